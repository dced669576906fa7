# Handoff: MVNO partner -> MVNE activation (TMF622 productOrder)
# Owners: the MVNO (orders, retries, reacts to order states), the MVNE (accepts all or
#   nothing, is idempotent on externalId, completes with the network).
# Guards against: timeouts and 5xx on the order (fp-9), orphan orders (fp-8), ICCIDs the
#   MVNE never mapped (fp-2).
@partner-activation
Feature: Activating a SIM through the MVNE

  @fp-9 @handling
  Scenario: An activation is acknowledged at once and completed by the network
    Given the partner has an available SIM
    When the partner orders the activation of the SIM on "po-gb-payg"
    Then the response status code is 201
    And the response property "$.state" is "acknowledged"
    And the response header "Location" exists
    When 5 seconds pass
    Then the order is "completed"
    And the SIM is "active"
