# Handoff: SIM fulfillment -> MVNE inventory: each shipped ICCID mapped to the subscriber's
#   account (PUT /mvne/v1/iccidMappings/{iccid}), seen at MVNO -> MVNE activation.
# Owners: fulfillment (sends the mapping when the SIM leaves the warehouse), MVNE (refuses an
#   activation of an unmapped SIM from a batch), MVNO (ships, activates, reconciles).
# Guards against: an ICCID shipped but never, late, twice or wrongly mapped (fp-2), and an
#   MVNE that does not answer the mapping (fp-9).
@fulfillment-mapping
Feature: Every shipped ICCID is mapped to its subscriber's account at the MVNE

  Background:
    Given the partner has 3 UICC SIMs in stock at fulfillment

  @fp-2 @handling
  Scenario: A SIM is mapped when it leaves the warehouse and activates on arrival
    When the partner ships a UICC SIM by express post to the account "acct-1001"
    And 2 hours pass
    Then the shipment is "InTransit"
    And the shipment's ICCID mapping is "sent"
    And the MVNE maps the ICCID "${sim.iccid}" to the account "acct-1001"
    When the partner orders the activation of the SIM on "po-gb-payg"
    Then the response status code is 201
    When 5 seconds pass
    Then the order is "completed"

  @fp-2 @failure
  Scenario: A mapping never sent leaves the delivered SIM refused, naming its batch
    Given the scenario "iccid-never-mapped" is applied
    When the partner ships a UICC SIM by express post to the account "acct-1001"
    And 1 day passes
    Then the shipment is "Delivered"
    And the MVNE maps the ICCID "${sim.iccid}" to no account
    When the partner orders the activation of the SIM on "po-gb-payg"
    Then the response status code is 422
    And the response property "$.code" is "ICCID_UNMAPPED"
    And the response property "$.batchNumber" is "${batch.batchNumber}"
    And fulfillment lists 1 shipments whose ICCID mapping is "notSent"

  @fp-2 @failure
  Scenario: A mapping sent a day after delivery loses the race with the activation
    Given the data fault "MAPPING_LATE" is switched on for "createShipment" at the fulfillment vendor
    When the partner ships a UICC SIM by express post to the account "acct-1001"
    And 1 day passes
    Then the shipment is "Delivered"
    And the shipment's ICCID mapping is "pending"
    When the partner orders the activation of the SIM on "po-gb-payg"
    Then the response property "$.code" is "ICCID_UNMAPPED"
    When 1 day passes
    Then the shipment's ICCID mapping is "sent"
    When the partner orders the activation of the SIM on "po-gb-payg"
    Then the response status code is 201

  @fp-2 @failure
  Scenario: A loader off by one maps the neighbouring ICCID to the subscriber
    Given the data fault "MAPPING_WRONG_ICCID" is switched on for "createShipment" at the fulfillment vendor
    When the partner ships a UICC SIM by express post to the account "acct-1001"
    And 2 hours pass
    Then the shipment's ICCID mapping is "sent"
    When the partner reads the shipment
    Then the response property "$.mapping.iccid" exists
    And the MVNE maps the ICCID "${shipment.mapping.iccid}" to the account "acct-1001"
    And the MVNE maps the ICCID "${sim.iccid}" to no account
    When the partner orders the activation of the SIM on "po-gb-payg"
    Then the response property "$.code" is "ICCID_UNMAPPED"

  @fp-2 @handling
  Scenario: A mapping sent twice is a repeat the MVNE answers without a second mapping
    Given the data fault "MAPPING_SENT_TWICE" is switched on for "createShipment" at the fulfillment vendor
    When the partner ships a UICC SIM by express post to the account "acct-1001"
    And 2 hours pass
    And the partner reads the shipment
    Then the response property "$.mappingStatus" is "sent"
    And the response property "$.mapping.calls" has 2 items
    And the response property "$.mapping.calls[0].httpStatus" is 201
    And the response property "$.mapping.calls[1].httpStatus" is 200
    And the MVNE maps the ICCID "${sim.iccid}" to the account "acct-1001"

  @fp-9 @handling
  Scenario: The mapping is retried with backoff while the MVNE answers 503
    Given the MVNE answers "mapIccid" with 503 for the next 2 calls
    When the partner ships a UICC SIM by express post to the account "acct-1001"
    And 2 hours pass
    And 1 minute passes
    Then the shipment's ICCID mapping is "sent"
    And the response property "$.mapping.calls" has 3 items
    And the response property "$.mapping.calls[2].httpStatus" is 201
    And the MVNE maps the ICCID "${sim.iccid}" to the account "acct-1001"

  @fp-9 @failure
  Scenario: A mapping the MVNE never takes fails after its last attempt, naming why
    Given the MVNE answers "mapIccid" with 503
    When the partner ships a UICC SIM by express post to the account "acct-1001"
    And 3 hours pass
    And the partner reads the shipment
    Then the response property "$.mappingStatus" is "failed"
    And the response property "$.mapping.code" is "MVNE_UNREACHABLE"
    And the response property "$.mapping.calls" has 8 items
    And the MVNE maps the ICCID "${sim.iccid}" to no account
