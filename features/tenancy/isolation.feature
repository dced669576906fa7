# Handoff: every partner-facing API of the stack (MVNE, billing, care, tax, payments):
#   one partner's data, seen through another partner's credential.
# Owners: every vendor scopes every query by the authenticated partner (never a body
#   field) and answers another partner's resource as it answers an unknown one.
# Guards against: partner data leaking across tenants (fp-7), including through errors
#   that confirm a resource exists.
@tenancy
Feature: A partner never sees another partner's data

  @fp-7 @handling
  Scenario: Another partner's SIM is not found, exactly like an unknown one
    Given a SIM of the partner "mvno-bravo"
    When the partner reads the SIM "${sim.iccid}"
    Then the response status code is 404
    And the response property "$.code" is "SIM_NOT_FOUND"
    And the response complies with the contract

  @fp-7 @handling
  Scenario: Another partner's subscription cannot be read or suspended
    Given the partner has an active subscription on "po-gb-payg"
    And the partner "mvno-bravo"
    When the partner reads the subscription
    Then the response status code is 404
    And the response property "$.code" is "PRODUCT_NOT_FOUND"
    When the partner sets the subscription "suspended"
    Then the response status code is 404
    Given the partner "mvno-alpha"
    Then the subscription is "active"

  @fp-7 @handling
  Scenario: Another partner's order is not found
    Given the partner has an active subscription on "po-gb-payg"
    And the partner "mvno-bravo"
    And the resource "/mvne/tmf-api/productOrderingManagement/v4/productOrder/{id}"
    And the path parameter "id" is set to "${order.id}"
    When the request "getProductOrder" is sent
    Then the response status code is 404
    And the response property "$.code" is "ORDER_NOT_FOUND"

  @fp-7 @handling
  Scenario: Each partner lists only its own SIMs
    Given the resource "/mvne/tmf-api/resourceInventoryManagement/v4/resource"
    And the query parameter "limit" is set to "1000"
    When the request "listSims" is sent
    Then the response status code is 200
    And the response header "X-Total-Count" is "50"
    And the response property "$[0].imsi" contains "00101"

  @fp-7 @handling
  Scenario: Another partner's care ticket is not found and not listed
    Given a severity 2 ticket at the care BPO
    And the partner "mvno-bravo"
    When the agent sets the ticket "inProgress"
    Then the response status code is 404
    And the response property "$.code" is "TROUBLE_TICKET_NOT_FOUND"
    Given the partner "mvno-alpha"
    Then the ticket is at tier "L1"

  @fp-7 @handling
  Scenario: Another partner's billing account is not found
    Given the partner "mvno-charlie" is onboarded for "po-us-talk" in "US"
    And the partner has an active subscription on "po-us-talk"
    And the subscription has a postpaid billing account in "Springfield, IL"
    And the partner "mvno-alpha"
    And the resource "/billing/tmf-api/accountManagement/v4/billingAccount/{id}"
    And the path parameter "id" is set to "${account.id}"
    When the request "getBillingAccount" is sent
    Then the response status code is 404

  @fp-7 @handling
  Scenario: The same external ID from two partners makes two orders
    Given the partner has an available SIM
    When the partner orders the activation of the SIM on "po-gb-payg" with external ID "same-1"
    Given the partner "mvno-bravo"
    And the partner has an available SIM
    When the partner orders the activation of the SIM on "po-us-talk" with external ID "same-1"
    Then the response status code is 201
    And the response header "Idempotent-Replayed" does not exist
    And the partner has 1 order with external ID "same-1"

  @fp-7 @handling
  Scenario: The network's charging key opens no partner data
    Given the resource "/mvne/tmf-api/productInventoryManagement/v4/product"
    And the caller is "mno-network"
    And the header "X-API-Key" is set to a valid access token
    When the request "listProducts" is sent
    Then the response status code is 401

  @fp-7 @handling
  Scenario: A capability the agreement does not grant is refused
    Given the partner "mvno-bravo"
    And the resource "/mvne/tmf-api/usageManagement/v4/usage"
    When the request "listUsage" is sent
    Then the response status code is 403
    And the response property "$.code" is "CAPABILITY_NOT_GRANTED"

  @fp-7 @failure
  Scenario: A terminated partner's key stops working at once
    Given the partner has an active subscription on "po-gb-payg"
    When the partner "mvno-alpha" is terminated
    And the partner reads the subscription
    Then the response status code is 403
    And the response property "$.code" is "PARTNER_INACTIVE"

  @fp-7 @handling
  Scenario: A callback URL pointing at cloud metadata is refused
    When the partner subscribes to its order events at "http://169.254.169.254/latest"
    Then the response status code is 422
    And the response property "$.code" is "CALLBACK_NOT_ALLOWED"

  @fp-7 @handling
  Scenario: Another client of the tax engine cannot read a quote
    When the billing platform asks for tax on "25.00" of "wireless access" in "Springfield, IL"
    Given the resource "/tax/v1/quotes/{quoteId}"
    And the path parameter "quoteId" is set to "${quote.id}"
    And the caller is "mvno-alpha"
    When the request "getTaxQuote" is sent
    Then the response status code is 401

  @fp-7 @handling
  Scenario: An onboarded partner's API key never lands in the journal
    Given the partner "mvno-delta" is onboarded for "po-gb-payg" in "GB"
    And the partner has an available SIM
    When the partner orders the activation of the SIM on "po-gb-payg"
    Then the response status code is 201
    And the journal holds no "hk_mvno-delta_"
