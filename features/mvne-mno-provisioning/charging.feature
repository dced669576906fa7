# Handoff: MNO usage -> MVNE online charging (TMF635 usage), and the barring the MVNE
#   sends back to the MNO when a prepaid balance runs out or is topped up.
# Owners: the MNO records usage and asks the MVNE to charge it; the MVNE rates, debits,
#   deduplicates on the record id and orders barring at the network.
# Guards against: double charging of resent usage (fp-8), late usage rated in the wrong
#   period (fp-8), barring lost when the MNO fails (fp-9).
@mvne-mno-provisioning
Feature: The MVNE charges network usage and bars a line that cannot pay

  @fp-8 @failure
  Scenario: The network resends each data record to charging
    Given the partner has an active subscription on "po-gb-payg"
    And the scenario "duplicate-usage" is applied
    When the subscriber uses 10 MB of data
    Then the MVNE received "chargeUsage" 2 times

  @fp-8 @handling
  Scenario: A resent usage record is charged once
    Given the partner has an active subscription on "po-gb-payg"
    And the scenario "duplicate-usage" is applied
    When the subscriber uses 10 MB of data
    Then the balance is 4.9 GBP
    And the usage of the subscription holds 1 records

  @fp-8 @handling
  Scenario: The same record id from the network is one charge
    Given the partner has an active subscription on "po-gb-payg"
    When the MNO charges the usage record "net-evt-1" of 5 minutes of voice
    And the MNO charges the usage record "net-evt-1" of 5 minutes of voice
    Then the response status code is 201
    And the balance is 4.6 GBP

  @fp-9 @handling
  Scenario: A balance that runs out bars the line at the network and a top-up lifts it
    Given the partner has an active subscription on "po-gb-payg"
    When the subscriber uses 600 MB of data
    And 5 seconds pass
    Then the subscription's networkBarring is "outgoing"
    And the network record of the SIM has "barring" set to "outgoing"
    When the partner tops up 10.07 GBP
    And 5 seconds pass
    Then the subscription's networkBarring is "none"
    And the balance is 10.07 GBP

  @fp-9 @handling
  Scenario: Barring still reaches the network when the MNO first answers 503
    Given the partner has an active subscription on "po-gb-payg"
    And the fault rule
      """
      {"match": {"role": "mno", "method": "POST",
                 "path": "/mno/tmf-api/serviceOrdering/v4/serviceOrder"},
       "effect": {"type": "status", "status": 503}, "dosage": {"firstN": 1}}
      """
    When the subscriber uses 600 MB of data
    And 1 minute passes
    Then the network record of the SIM has "barring" set to "outgoing"

  @fp-9 @handling
  Scenario: Top-ups are exact to the penny and in the plan's currency
    Given the partner has an active subscription on "po-gb-payg"
    When the partner tops up 10.001 GBP
    Then the response status code is 422
    And the response property "$.code" is "INVALID_AMOUNT"
    When the partner tops up 10 USD
    Then the response property "$.code" is "CURRENCY_MISMATCH"
    And the balance is 5.0 GBP
