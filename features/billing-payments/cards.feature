# Handoff: billing -> card payment gateway (TMF670 tokenised cards, TMF676 payments and
#   refunds), then the captured payment recorded at billing against the bill.
# Owners: billing keeps only tokens, retries soft declines and never hard ones, and
#   records each captured payment once; the gateway authorises, captures and refunds.
# Guards against: issuer failures and retries that charge twice or never (fp-9), card
#   data kept where it must not be (fp-7).
@billing-payments
Feature: Billing takes card payments through the gateway

  @fp-9 @handling
  Scenario: A soft decline passes when it is tried again
    Given the billing platform holds a card with the token "tok_soft_insufficient_funds"
    When the billing platform charges "25.00" EUR to the card
    Then the payment is "failed"
    When the billing platform charges "25.00" EUR to the card
    Then the payment is "captured"

  @fp-9 @failure
  Scenario: A hard decline is final and the next charge never reaches the issuer
    Given the billing platform holds a card with the token "tok_hard_stolen_card"
    When the billing platform charges "25.00" EUR to the card
    Then the payment is "denied"
    When the billing platform charges "25.00" EUR to the card
    Then the response status code is 422
    And the response property "$.code" is "HARD_DECLINE_NOT_RETRYABLE"

  @fp-9 @handling
  Scenario: A retried charge with the same idempotency key charges once
    Given the billing platform holds a card with the token "tok_visa"
    When the billing platform charges "25.00" EUR to the card with the idempotency key "bill-0001-1"
    And the billing platform charges "25.00" EUR to the card with the idempotency key "bill-0001-1"
    Then the response header "Idempotent-Replayed" is "true"
    And the response complies with the contract

  @fp-9 @handling
  Scenario: Refunds never exceed what was captured
    Given the billing platform holds a card with the token "tok_visa"
    When the billing platform authorises "30.00" EUR on the card
    And the billing platform captures "20.00" EUR of the payment
    And the billing platform refunds "12.50" EUR of the payment
    Then the response status code is 201
    When the billing platform refunds "7.51" EUR of the payment
    Then the response status code is 409
    And the response property "$.code" is "REFUND_EXCEEDS_CAPTURED"

  @fp-7 @handling
  Scenario: A card number is refused and never kept, not even in the journal
    When the billing platform registers a card with the number "4111111111111111"
    Then the response status code is 422
    And the response property "$.code" is "CARD_DATA_NOT_ACCEPTED"
    And the response body does not contain "4111111111111111"
    And the journal holds no "4111111111111111"

  @fp-9 @handling
  Scenario: A captured card payment recorded at billing settles the bill and restores the line
    Given the partner "mvno-charlie" is onboarded for "po-us-talk" in "US"
    And the partner's bills are due on issue and dunning takes a step a day
    And the partner has an active subscription on "po-us-talk"
    And the subscription has a postpaid billing account in "Springfield, IL"
    And the bill run of the period has run
    And the billing platform holds a card with the token "tok_visa"
    When 4 days pass
    And the billing platform charges "${bill.amountDue.amount}" USD to the card
    And the captured payment is recorded at billing with its id as the reference
    And everything due has run
    Then the bill is "settled"
    And the subscription is "active"
