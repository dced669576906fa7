# Handoff: bill disputes between the MVNE and the billing vendor (billing's dispute API,
#   owners from the partner's responsibility matrix).
# Owners: billing opens and tracks disputes and credits the next bill; the MVNE owns
#   disputes about usage it rated; the matrix (set by the MVNO) says who owns the rest.
# Guards against: a dispute that nobody owns (fp-1): tax and roaming are nobody's by
#   default, so the customer waits while each vendor assumes the other is on it.
@billing-disputes
Feature: Every bill dispute has an owner

  Background:
    Given the partner "mvno-charlie" is onboarded for "po-us-talk, po-us-data" in "US"
    And the partner has an active subscription on "po-us-talk"
    And the subscription has a postpaid billing account in "Springfield, IL"
    And the subscriber uses 30 minutes of voice
    And the bill run of the period has run

  @fp-1 @handling
  Scenario: A usage dispute belongs to the MVNE by the responsibility matrix
    When the customer disputes line 2 of the bill as "usage"
    Then the response status code is 201
    And the response complies with the contract
    And the dispute is owned by "mvne"

  @fp-1 @failure
  Scenario: A tax dispute has no owner and cannot be resolved
    When the customer disputes line 1 of the bill as "tax"
    Then the dispute has no owner and is flagged unowned
    When the dispute is resolved with a credit of 1.00 USD
    Then the response status code is 409
    And the response property "$.code" is "DISPUTE_UNOWNED"

  @fp-1 @failure
  Scenario: An unowned dispute runs past its SLA
    When the customer disputes line 1 of the bill as "tax"
    And 11 days pass
    Then the dispute is listed as past its SLA

  @fp-1 @handling
  Scenario: Once someone owns it the dispute is resolved and the next bill credits it
    When the customer disputes line 1 of the bill as "tax"
    And the dispute is assigned to "billingVendor"
    And the dispute is resolved with a credit of 1.00 USD
    Then the response property "$.state" is "resolved"
    When 31 days pass
    Then the next bill carries a credit of 1.00 USD

  @fp-1 @handling
  Scenario: The MVNO gives tax disputes to the billing vendor before any arise
    Given the partner's responsibility matrix gives "tax" disputes to "billingVendor"
    When the customer disputes line 1 of the bill as "tax"
    Then the dispute is owned by "billingVendor"

  @fp-1 @handling
  Scenario: A credit larger than the disputed line is refused
    When the customer disputes line 2 of the bill as "usage"
    And the dispute is resolved with a credit of 99.00 USD
    Then the response status code is 422
    And the response property "$.code" is "ADJUSTMENT_TOO_LARGE"

  @fp-1 @handling
  Scenario: A line already credited in full cannot be credited again
    When the customer disputes line 2 of the bill as "usage"
    And the dispute is resolved with a credit of 1.50 USD
    And the customer disputes line 2 of the bill as "usage"
    Then the response status code is 409
    And the response property "$.code" is "LINE_ALREADY_CREDITED"
    And the response complies with the contract
