# Handoff: MVNE -> MNO network provisioning (TMF641 serviceOrder -> TMF638 service, the
#   HLR/HSS record), and the barring the MVNE orders for suspension and zero balance.
# Owners: the MVNE submits, retries and polls; the MNO provisions, idempotent on the
#   MVNE's externalId (its own order id), and answers with partner-safe reasons.
# Guards against: 5xx and timeouts from the MNO (fp-9), orphan and doubly provisioned
#   orders (fp-8), barring that never reaches the network (fp-8, fp-9).
@mvne-mno-provisioning
Feature: The MVNE provisions its partners' lines at the MNO

  @fp-9 @handling
  Scenario: The network record holds what the MVNE asked for, under the partner's correlation ID
    Given the partner's requests carry the correlation ID "corr-activation-1"
    And the partner has an active subscription on "po-gb-payg"
    Then the network record of the SIM has "ICCID" set to "${sim.iccid}"
    And the network record of the SIM has "MSISDN" set to "${subscription.msisdn}"
    And the network record of the SIM has "IMSI" set to "${sim.imsi}"
    And the network record of the SIM has "attachState" set to "attached"
    And the correlation ID "corr-activation-1" reaches the MNO

  @fp-9 @handling
  Scenario: Two 503s from the MNO are retried with backoff and the line still comes up
    Given the partner has an available SIM
    And the MNO answers "createServiceOrder" with 503 for the next 2 calls
    When the partner orders the activation of the SIM on "po-gb-payg"
    And 1 minute passes
    Then the order is "completed"
    And the MNO received "createServiceOrder" 3 times
    And the MNO holds 1 service for the SIM

  @fp-9 @failure
  Scenario: The MNO down for the whole retry window fails the order as retryable
    Given the partner has an available SIM
    And the MNO answers "createServiceOrder" with 503
    When the partner orders the activation of the SIM on "po-gb-payg"
    And 1 day passes
    Then the order is "failed" with reason "ACTIVATION_PENDING_VERIFICATION"
    And the response property "$.stateReason.retryable" is true
    And the MNO received "createServiceOrder" 8 times
    And the SIM is "available"

  @fp-8 @handling
  Scenario: A service order whose answer was lost is not provisioned twice on the retry
    Given the partner has an available SIM
    And the MNO processes the next "createServiceOrder" but its answer is lost
    When the partner orders the activation of the SIM on "po-gb-payg"
    And 1 minute passes
    Then the order is "completed"
    And the MNO received "createServiceOrder" 2 times
    And the MNO holds 1 service for the SIM

  @fp-8 @failure
  Scenario: The MNO acknowledges a service order and never creates it
    Given the partner has an available SIM
    And the data fault "ORDER_STUCK" is switched on for "createServiceOrder" at the MNO
    When the partner orders the activation of the SIM on "po-gb-payg"
    And 1 hour passes
    Then the order is "inProgress"
    And the MNO holds 0 service for the SIM

  @fp-9 @handling
  Scenario: A line the HLR refuses fails with a partner-safe reason and frees the SIM
    Given the partner has an available SIM
    And the MNO already holds a network record for the SIM's IMSI
    When the partner orders the activation of the SIM on "po-gb-payg"
    And 10 seconds pass
    Then the order is "failed" with reason "NETWORK_PROVISIONING_FAILED"
    And the response body does not contain "HLR"
    And the response body does not contain "IMSI"
    And the SIM is "available"

  @fp-8 @handling
  Scenario: Suspend, resume and terminate follow through to the network record
    Given the partner has an active subscription on "po-gb-payg"
    When the partner sets the subscription "suspended"
    And 5 seconds pass
    Then the network record of the SIM has "barring" set to "all"
    When the partner sets the subscription "active"
    And 5 seconds pass
    Then the network record of the SIM has "barring" set to "none"
    When the partner sets the subscription "terminated"
    And 5 seconds pass
    Then the network record of the SIM is "terminated"
    And the SIM is "terminated"

  @fp-8 @handling
  Scenario: A terminated subscription cannot be brought back
    Given the partner has an active subscription on "po-gb-payg"
    When the partner sets the subscription "terminated"
    And the partner sets the subscription "active"
    Then the response status code is 409
    And the response property "$.code" is "PRODUCT_TERMINATED"
