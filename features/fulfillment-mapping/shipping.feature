# Handoff: SIM fulfillment -> carrier (tracking on the simulated clock), and fulfillment ->
#   MVNE when a SIM comes back (its mapping withdrawn before it is restocked).
# Owners: fulfillment (ships, tracks, takes returns), the carrier, MVNE (unmaps only a SIM
#   nobody uses), MVNO (tells the subscriber, claims carrier penalties).
# Guards against: a returned SIM restocked while still mapped to the old account, or an
#   active one restocked at all (fp-2); carriers that miss the delivery promise (fp-9).
@fulfillment-mapping
Feature: Shipments keep their promise, and a returned SIM leaves no mapping behind

  Background:
    Given the partner has 2 UICC SIMs in stock at fulfillment

  @fp-2 @handling
  Scenario: A SIM returned intact is unmapped at the MVNE before it is restocked
    Given the partner ships a UICC SIM by express post to the account "acct-1001"
    And 1 day passes
    When the subscriber sends the SIM back intact
    Then the response status code is 200
    And the response property "$.return.stockOutcome" is "awaitingUnmap"
    When everything due has run
    Then the shipment's ICCID mapping is "withdrawn"
    And the MVNE maps the ICCID "${sim.iccid}" to no account
    And fulfillment's stock holds the SIM as "available"

  @fp-2 @failure
  Scenario: A SIM returned after its activation cannot be unmapped and is quarantined
    Given the partner ships a UICC SIM by express post to the account "acct-1001"
    And 1 day passes
    And the partner orders the activation of the SIM on "po-gb-payg"
    And 5 seconds pass
    When the subscriber sends the SIM back intact
    And everything due has run
    Then fulfillment's stock holds the SIM as "quarantined"
    And the MVNE maps the ICCID "${sim.iccid}" to the account "acct-1001"
    And the SIM is "active"

  @fp-9 @failure
  Scenario: A failed first delivery attempt breaches the express promise
    Given the data fault "CARRIER_ATTEMPT_FAIL" is switched on for "createShipment" at the fulfillment vendor
    When the partner ships a UICC SIM by express post to the account "acct-1001"
    And 1 day passes
    Then the shipment is "AttemptFail"
    And fulfillment lists 1 shipments that breached their delivery promise
    When 1 day passes
    Then the shipment is "Delivered"

  @fp-2 @handling
  Scenario: A parcel damaged in transit comes back to quarantine and its mapping is withdrawn
    Given the data fault "CARRIER_EXCEPTION" is switched on for "createShipment" at the fulfillment vendor
    When the partner ships a UICC SIM by express post to the account "acct-1001"
    And 12 hours pass
    Then the shipment is "Exception"
    When 2 days pass
    Then fulfillment's stock holds the SIM as "quarantined"
    And the shipment's ICCID mapping is "withdrawn"
    And the MVNE maps the ICCID "${sim.iccid}" to no account

  @fp-2 @handling
  Scenario: An eSIM profile is mapped when released and enabled after the download
    Given the partner has 1 eSIM SIMs in stock at fulfillment
    When the partner ships a eSIM SIM to the account "acct-2002"
    And 2 minutes pass
    Then the shipment is "Delivered"
    And the MVNE maps the ICCID "${sim.iccid}" to the account "acct-2002"
    When the device with EID "89049032000000000000000000000163" downloads the SIM's profile
    Then the response property "$.esimProfile.state" is "downloaded"
    When 1 minute passes
    And the partner reads the shipment
    Then the response property "$.esimProfile.state" is "enabled"
