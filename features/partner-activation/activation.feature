# Handoff: MVNO partner -> MVNE activation (TMF622 productOrder).
# Owners: the MVNO orders, retries and reacts to order states; the MVNE accepts an
#   order all or nothing, is idempotent on externalId, and completes it with the network.
# Guards against: timeouts and 5xx on the order (fp-9), duplicated or orphan orders
#   (fp-8), ICCIDs the MVNE never mapped to the partner (fp-2).
@partner-activation
Feature: Activating a SIM through the MVNE

  @fp-9 @handling
  Scenario: An activation is acknowledged at once and completed by the network
    Given the partner has an available SIM
    When the partner orders the activation of the SIM on "po-gb-payg"
    Then the response status code is 201
    And the response property "$.state" is "acknowledged"
    And the response header "Location" exists
    And the response complies with the contract
    When 5 seconds pass
    Then the order is "completed"
    And the SIM is "active"

  @fp-9 @handling
  Scenario: A partner retrying after two 503s gets exactly one order
    Given the partner has an available SIM
    And the MVNE answers "createProductOrder" with 503 for the next 2 calls
    When the partner orders the activation of the SIM on "po-gb-payg" with external ID "shop-0001"
    Then the response status code is 503
    When the partner sends the same order again
    And the partner sends the same order again
    Then the response status code is 201
    And the partner has 1 order with external ID "shop-0001"

  @fp-9 @failure
  Scenario: The MVNE commits an order and the answer never reaches the partner
    Given the partner has an available SIM
    And the MVNE processes the next "createProductOrder" but its answer is lost
    When the partner orders the activation of the SIM on "po-gb-payg" with external ID "shop-0002"
    Then the request got no answer
    And the partner has 1 order with external ID "shop-0002"

  @fp-9 @handling
  Scenario: A retry after a lost answer replays the first order instead of a second
    Given the partner has an available SIM
    And the MVNE processes the next "createProductOrder" but its answer is lost
    When the partner orders the activation of the SIM on "po-gb-payg" with external ID "shop-0003"
    And the partner sends the same order again
    Then the response status code is 201
    And the response header "Idempotent-Replayed" is "true"
    And the partner has 1 order with external ID "shop-0003"
    When 5 seconds pass
    Then the order is "completed"

  @fp-9 @handling
  Scenario: The same idempotency key with another body is refused and reserves nothing
    Given the partner has 2 available SIMs
    And the resource "/mvne/tmf-api/productOrderingManagement/v4/productOrder"
    And the header "Idempotency-Key" is set to "key-1"
    And the request body is set to
      """
      {"externalId": "a", "productOrderItem": [{"id": "1", "action": "add",
        "productOffering": {"id": "po-gb-payg"},
        "product": {"productCharacteristic": [{"name": "ICCID", "value": "${sims.0.iccid}"}]}}]}
      """
    When the request "createProductOrder" is sent
    Then the response status code is 201
    Given the request body property "$.productOrderItem[0].product.productCharacteristic[0].value" is set to "${sims.1.iccid}"
    When the request "createProductOrder" is sent
    Then the response status code is 422
    And the response property "$.code" is "IDEMPOTENCY_KEY_REUSED"

  @fp-2 @failure
  Scenario: A shipped SIM the MVNE never mapped is refused as unmapped
    Given the partner has an available SIM
    And the scenario "unmapped-iccid" is applied
    When the partner orders the activation of the SIM on "po-gb-payg"
    Then the response status code is 422
    And the response property "$.code" is "ICCID_UNMAPPED"
    And the response complies with the contract
    And the partner has no order
    And the SIM is "available"

  @fp-2 @handling
  Scenario: An ICCID outside the partner's pool is refused and nothing is created
    Given an ICCID the MVNE never mapped to the partner
    When the partner orders the activation of the SIM on "po-gb-payg"
    Then the response status code is 422
    And the response property "$.code" is "ICCID_UNMAPPED"
    And the partner has no order

  @fp-2 @handling
  Scenario: An ICCID sent with a wrong check digit is refused naming the field
    Given the partner has an available SIM
    And the SIM's ICCID has a wrong check digit
    When the partner orders the activation of the SIM on "po-gb-payg"
    Then the response status code is 400
    And the response property "$.field" is "productOrderItem[0].product.productCharacteristic[0].value"
    And the response property "$.detail" contains "iccid"
    And the partner has no order

  @fp-2 @failure
  Scenario: An ICCID that belongs to another partner's pool is unmapped for this one
    Given a SIM of the partner "mvno-bravo"
    When the partner orders the activation of the SIM on "po-gb-payg"
    Then the response status code is 422
    And the response property "$.code" is "ICCID_UNMAPPED"
    Given the partner "mvno-bravo"
    Then the SIM is "available"

  @fp-8 @failure
  Scenario: An order the network acknowledged and never created stays in progress
    Given the partner has an available SIM
    And the scenario "orphan-order" is applied
    When the partner orders the activation of the SIM on "po-gb-payg"
    And 1 hour passes
    Then the order is "inProgress"
    And the MNO's service order for the order is "acknowledged"

  @fp-8 @failure
  Scenario: One line of a two-line order fails on the network and the order ends partial
    Given the partner has 2 available SIMs
    And the fault rule
      """
      {"match": {"role": "mno", "operation": "createServiceOrder",
                 "fields": {"iccid": "${sims.1.iccid}"}},
       "effect": {"type": "data", "fault": "ORDER_ITEM_FAILED"}}
      """
    When the partner orders the activation of both SIMs on "po-gb-payg"
    And 10 seconds pass
    Then the order is "partial"
    And order line 1 is "completed"
    And order line 2 is "failed"

  @fp-8 @handling
  Scenario: Suspending order submission spares the order already in flight
    Given the partner has 2 available SIMs
    When the partner orders the activation of both SIMs on "po-gb-payg"
    And the capability "SUBMIT_ORDER" of "mvno-alpha" is suspended
    And 5 seconds pass
    Then the MNO's service order for the order is "completed"
    When the partner sends the same order again
    Then the response status code is 403
    And the response property "$.code" is "CAPABILITY_SUSPENDED"

  @fp-8 @handling
  Scenario: Terminating a partner cancels its order in flight
    Given the partner has an available SIM
    When the partner orders the activation of the SIM on "po-gb-payg"
    And the partner "mvno-alpha" is terminated
    Then the response property "$.cancelledOrders" has 1 items
