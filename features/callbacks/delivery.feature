# Handoff: MVNE -> MVNO event callbacks (TMF hubs, Standard Webhooks signatures), watched
#   at the stack's built-in sink /__sink/{name}.
# Owners: the MVNE signs, orders per resource, retries with backoff and disables a dead
#   endpoint; the MVNO answers fast, verifies signatures and deduplicates on webhook-id.
# Guards against: the callback storm of fp-6: an endpoint down, retries without backoff,
#   duplicates and events out of order.
@callbacks
Feature: Order events reach the partner signed, in order, once

  Background:
    Given the partner subscribes to its order events at the sink "orders"
    And the partner has an available SIM

  @fp-6 @handling
  Scenario: Each state change of an activation is one signed callback, in order
    When the partner orders the activation of the SIM on "po-gb-payg"
    And 5 seconds pass
    Then the sink "orders" received 3 deliveries of 3 events
    And every delivery to the sink "orders" is signed validly
    And the sink "orders" received the states "acknowledged, inProgress, completed" in that order

  @fp-6 @failure
  Scenario: Duplicated callbacks arrive under the same webhook-id
    Given every callback is sent 1 more times
    When the partner orders the activation of the SIM on "po-gb-payg"
    And 5 seconds pass
    Then the sink "orders" received 6 deliveries of 3 events
    And the sink "orders" counted 3 duplicates

  @fp-6 @failure
  Scenario: A storm sends one event ten times a second
    Given the first callback storms 10 times a second for 3 seconds
    When the partner orders the activation of the SIM on "po-gb-payg"
    And 5 seconds pass
    Then the sink "orders" received 32 deliveries of 3 events
    And the sink "orders" counted 29 duplicates

  @fp-6 @failure
  Scenario: A held-back event arrives after the ones that followed it
    Given the first callback is held back 30 seconds
    When the partner orders the activation of the SIM on "po-gb-payg"
    And 31 seconds pass
    Then the sink "orders" received the states out of order
    And the last delivery to the sink "orders" carries the state "acknowledged"

  @fp-6 @handling
  Scenario: Ordered by event time the held-back events tell the true story
    Given the first callback is held back 30 seconds
    When the partner orders the activation of the SIM on "po-gb-payg"
    And 31 seconds pass
    Then the newest event at the sink "orders" by event time carries the state "completed"

  @fp-6 @failure
  Scenario: Wrong and missing signatures are told apart from valid ones
    Given the first callback is signed with a wrong signature
    And one callback in 3 is sent without a signature
    When the partner orders the activation of the SIM on "po-gb-payg"
    And 5 seconds pass
    Then the signatures at the sink "orders" are "invalid, valid, missing"

  @fp-6 @handling
  Scenario: A receiver down for three attempts gets the event on the fourth, with backoff
    Given the sink "orders" answers 503 to the next 3 deliveries
    When the partner orders the activation of the SIM on "po-gb-payg"
    And 1 hour passes
    Then the sink "orders" received 6 deliveries of 3 events
    And every delivery to the sink "orders" is signed validly
    And the partner's callback endpoint has 0 dead letters

  @fp-6 @failure
  Scenario: Without backoff a failing receiver is hammered until the event is dead-lettered
    Given the sink "orders" answers 503
    And failed callbacks are retried without backoff
    When the partner orders the activation of the SIM on "po-gb-payg"
    And everything due has run
    Then the sink "orders" received 16 deliveries of 2 events
    And the partner's callback endpoint has 2 dead letters

  @fp-6 @handling
  Scenario: An endpoint that answers 410 is disabled and its events are kept for a redrive
    Given the sink "orders" answers 410
    When the partner orders the activation of the SIM on "po-gb-payg"
    And 5 seconds pass
    Then the partner's callback endpoint is disabled
    And the partner's callback endpoint kept 1 deliveries unsent
    Given the sink "orders" answers 200
    When the partner's callback endpoint is redriven
    Then the sink "orders" received 5 deliveries of 3 events
