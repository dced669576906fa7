# Handoff: billing dunning -> MVNE (PATCH product status: suspended, active, terminated)
#   and the payment that restores service.
# Owners: billing walks the ladder and orders suspension, restore and disconnection at the
#   MVNE, and reconciles what it ordered with what the MVNE holds; the MVNE applies them.
# Guards against: an order lost between billing and the MVNE, so a paid line stays barred
#   or an unpaid one keeps its service (fp-9), and restores racing a disconnection (fp-8).
@billing-payments
Feature: Dunning suspends at the MVNE and a payment restores service

  Background:
    Given the partner "mvno-charlie" is onboarded for "po-us-talk, po-us-data" in "US"
    And the partner's bills are due on issue and dunning takes a step a day
    And the partner has an active subscription on "po-us-talk"
    And the subscription has a postpaid billing account in "Springfield, IL"
    And the bill run of the period has run

  @fp-9 @handling
  Scenario: An unpaid bill suspends the line at the MVNE and a payment restores it
    When 4 days pass
    Then the last dunning action is "restriction" with the MVNE order "suspendSent"
    And the subscription is "suspended"
    When the bill is paid in full with the reference "card-0001"
    And everything due has run
    Then the last dunning action is "restore" with the MVNE order "restoreSent"
    And the subscription is "active"
    And the billing account is in dunning stage "none" with service "active"
    And billing's reconciliation finds no break

  @fp-9 @failure
  Scenario: A suspension billing recorded but never sent leaves the line active
    Given the data fault "SUSPENSION_NOT_SENT" is switched on for the billing platform
    When 4 days pass
    Then the last dunning action is "restriction" with the MVNE order "suspendSent"
    And the subscription is "active"
    And billing's reconciliation finds "SUSPENSION_NOT_APPLIED" for the account

  @fp-9 @failure
  Scenario: A paid line whose restore order was lost stays barred
    When 4 days pass
    Given the data fault "RESTORE_ORDER_LOST" is switched on for "createPayment" at the billing platform
    When the bill is paid in full with the reference "card-0002"
    And 1 minute passes
    Then the last dunning action is "restore" with the MVNE order "restoreSent"
    And the subscription is "suspended"
    And billing's reconciliation finds "RESTORE_NOT_APPLIED" for the account

  @fp-9 @handling
  Scenario: The suspension reaches the MVNE even when it first answers 503
    Given the MVNE answers "updateProductStatus" with 503 for the next 2 calls
    When 4 days pass
    And 10 minutes pass
    Then the subscription is "suspended"
    And billing's reconciliation finds no break

  @fp-8 @handling
  Scenario: Disconnection terminates the line and a late payment does not revive it
    When 30 days pass
    Then the last dunning action is "disconnection" with the MVNE order "terminateSent"
    And the subscription is "terminated"
    When the bill is paid in full with the reference "collector-1"
    And everything due has run
    Then the subscription is "terminated"
    And billing's reconciliation finds no break

  @fp-9 @handling
  Scenario: A payment recorded twice under one reference counts once
    When the bill is paid 10.25 with the reference "card-1"
    And the bill is paid 10.25 with the reference "card-1"
    Then the response status code is 201
    And the bill has 1 payment
    When the bill is paid 5 with the reference "card-1"
    Then the response property "$.code" is "PAYMENT_REFERENCE_REUSED"
