# Handoff: MNO network usage -> wholesale rating -> the MVNO's settlement ledger, and the
#   MVNO's checks of it (wholesale usage, disputes, reconciliation).
# Owners: MNO (rates each record once, under the agreement version of its event time, in an
#   append-only ledger), MVNO (checks its invoice, disputes within the window).
# Guards against: usage settled twice, rated under the wrong agreement version or fed in the
#   wrong unit, and money corrected by editing instead of reversing (fp-8).
@mno-settlement
Feature: Each network usage record is settled once, at the price of its own time

  Background:
    Given the partner has an active subscription on "po-gb-payg"

  @fp-8 @handling
  Scenario: An activation and its data are each charged once in the ledger
    When the subscriber uses 500 MB of data
    Then the partner's wholesale ledger holds 1 "activationFee" entries totalling 2.00 GBP
    And the partner's wholesale ledger holds 1 "usage" entries totalling 1.00 GBP
    And the partner's latest "usage" ledger entry has source "network"
    And the partner's latest "usage" ledger entry has entryType "original"

  @fp-8 @handling
  Scenario: Usage the network delivers twice is settled once and counted as a duplicate
    Given the data fault "DUPLICATE_USAGE" is switched on for the MNO
    When the subscriber uses 500 MB of data
    Then the partner's wholesale ledger holds 1 "usage" entries totalling 1.00 GBP
    When the partner reconciles its "usage" view
    Then the response status code is 201
    And the response property "$.status" is "clean"
    And the response property "$.compared.duplicatesDropped" is 1

  @fp-8 @failure
  Scenario: Voice fed to charging in seconds as minutes shows up as a unit mismatch
    Given the data fault "WRONG_UNIT" is switched on for the MNO
    When the subscriber uses 5 minutes of voice
    Then the partner's wholesale ledger holds 1 "usage" entries totalling 0.05 GBP
    When the partner reconciles its "usage" view
    Then the response property "$.status" is "breaks"
    And the response property "$.breaks[0].code" is "UNIT_MISMATCH"
    And the response complies with the contract

  @fp-8 @handling
  Scenario: Late usage is rated under the agreement version in force when it happened
    Given the settlement analyst publishes an agreement version with data at "0.0010" per MB from 1 hour on
    And the fault rule
      """
      {"match": {"role": "mno", "fields": {"usageType": "data"}},
       "effect": {"type": "data", "fault": "LATE_USAGE", "delaySeconds": 7200},
       "dosage": {"firstN": 1}}
      """
    When 2 hours pass
    And the subscriber uses 100 MB of data
    Then the partner's latest wholesale usage was rated under agreement version 1 at 0.20 GBP
    When the subscriber uses 100 MB of data
    Then the partner's latest wholesale usage was rated under agreement version 2 at 0.10 GBP

  @fp-8 @handling
  Scenario: An agreement version that would take effect in the past is refused
    When the settlement analyst publishes an agreement version with data at "0.0010" per MB from 1 hour ago
    Then the response status code is 422
    And the response property "$.code" is "AGREEMENT_VERSION_BACKDATED"
    When the subscriber uses 100 MB of data
    Then the partner's latest wholesale usage was rated under agreement version 1 at 0.20 GBP

  @fp-8 @handling
  Scenario: An accepted dispute reverses the charge and posts the claimed quantity
    Given the subscriber uses 500 MB of data
    When the partner disputes its latest wholesale usage claiming 100
    Then the response status code is 201
    When the settlement analyst accepts the dispute
    Then the response status code is 200
    And the partner's wholesale ledger holds 3 "usage" entries totalling 0.20 GBP
    And the partner's latest "usage" ledger entry has entryType "correction"

  @fp-7 @handling
  Scenario: Another MVNO cannot read the partner's dispute
    Given the subscriber uses 500 MB of data
    And the partner disputes its latest wholesale usage claiming 100
    And the partner "mvno-bravo"
    When the partner reads the dispute
    Then the response status code is 404
    And the response body does not contain "mvno-alpha"

  @fp-9 @failure
  Scenario: A reconciliation that cannot read the MVNO's own orders fails as a bad gateway
    Given the MVNE answers "listProductOrders" with 503
    When the partner reconciles its "order" view
    Then the response status code is 502
    And the response complies with the contract
