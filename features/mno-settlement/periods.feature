# Handoff: MNO settlement period close -> statement and invoice -> the MVNO's payment, and
#   the MNO's suspension of new activations at the MVNE (ACTIVATE_SIM) when it is unpaid.
# Owners: MNO settlement staff (close periods, record payments, approve adjustments), MVNO
#   (pays, disputes within the window), MVNE (refuses activations while suspended).
# Guards against: corrections rewriting a closed period, adjustments one person both makes
#   and approves, and the suspension racing orders already in flight (fp-8): an order the
#   MVNE accepted before the cut-off that reaches the network after the in-flight grace fails
#   with ACTIVATIONS_SUSPENDED (the refusal kept at the MNO), and a new one is refused at the
#   MVNE.
@mno-settlement
Feature: Closed periods stay closed, and an unpaid invoice suspends new activations only

  Background:
    Given the clock is at "2026-03-31T23:00:00Z"
    And the partner has an active subscription on "po-gb-payg"
    And the subscriber uses 200 MB of data
    And 1 hour passes

  @fp-8 @handling
  Scenario: Closing a month freezes a statement whose total the invoice and ledger agree on
    When the settlement analyst closes the period "2026-03"
    Then the response status code is 200
    And the response property "$.statement.total.amount" is "3.90"
    And the response property "$.invoice.amount.amount" is "3.90"
    And the response property "$.period.status" is "closed"
    When the partner reconciles its "settlement" view
    Then the response property "$.status" is "clean"

  @fp-8 @handling
  Scenario: Usage of a closed month that arrives late lands in the next open period
    Given the settlement analyst closes the period "2026-03"
    And the data fault "LATE_USAGE" is switched on for the MNO
    When the subscriber uses 100 MB of data
    Then the partner's latest "usage" ledger entry has servicePeriod "2026-03"
    And the partner's latest "usage" ledger entry has periodId "2026-04"
    When the settlement analyst closes the period "2026-03"
    Then the response status code is 409
    And the response property "$.code" is "PERIOD_CLOSED"

  @fp-8 @handling
  Scenario: A dispute after the agreement's window is refused naming the row
    Given the settlement analyst closes the period "2026-03"
    And 16 days pass
    When the partner disputes its latest wholesale usage claiming 100
    Then the response status code is 422
    And the response property "$.code" is "DISPUTE_WINDOW_CLOSED"

  @fp-8 @handling
  Scenario: A manual adjustment is posted only once another person approves it
    When the settlement analyst proposes an adjustment of -5.00 GBP
    Then the response property "$.status" is "pendingApproval"
    When the settlement analyst approves the adjustment
    Then the response status code is 403
    And the partner's wholesale ledger holds 0 "adjustment" entries totalling 0 GBP
    When the settlement approver approves the adjustment
    Then the response status code is 200
    And the partner's wholesale ledger holds 1 "adjustment" entries totalling -5.00 GBP

  @fp-8 @failure
  Scenario: An order accepted just before the cut-off fails while the network refuses it
    Given the scenario "suspension-race" is applied
    And the partner has an available SIM
    When the partner orders the activation of the SIM on "po-gb-payg"
    And the settlement analyst closes the period "2026-03"
    And 5 minutes pass
    Then the order is "failed" with reason "ACTIVATIONS_SUSPENDED"
    And the partner's new activations are "suspended"
    And the response property "$.suspension[0].decision[0].decision" is "refused"
    When the partner orders the activation of the SIM on "po-gb-payg"
    Then the response status code is 403
    And the response property "$.code" is "CAPABILITY_SUSPENDED"

  @fp-8 @handling
  Scenario: Paying the overdue invoice lifts the suspension of new activations
    Given the scenario "suspension-race" is applied
    When the settlement analyst closes the period "2026-03"
    And everything due has run
    Then the partner's new activations are "suspended"
    When the settlement analyst records the payment of the invoice
    Then the response status code is 201
    And the partner's new activations are "granted"
