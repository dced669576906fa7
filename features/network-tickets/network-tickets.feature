# Handoff: MVNE -> MNO network trouble tickets (TMF621), opened by the care BPO through
#   the MVNE for a ticket at L3.
# Owners: the MVNE opens and follows the ticket at the MNO; the MNO works the categories
#   its SLA covers (coverage, provisioning, roaming) and flags the rest as stalled.
# Guards against: a network ticket stalled because the MNO SLA does not cover its
#   category (fp-5), and an MNO that does not answer (fp-9).
@network-tickets
Feature: Network tickets reach the MNO and are worked under its SLA

  Background:
    Given a severity 1 ticket at the care BPO
    And the ticket has escalated to L3

  @fp-5 @handling
  Scenario: A coverage ticket is worked and resolved by the MNO
    When the agent escalates the ticket to the network as "coverage"
    Then the response status code is 200
    And the response complies with the contract
    When 5 hours pass
    Then the MNO's network ticket is "resolved"
    And the MNO flags no network ticket as stalled

  @fp-5 @failure
  Scenario: A category the MNO SLA does not cover stalls, and the MNO flags it after a day
    When the agent escalates the ticket to the network as "billing-dispute"
    Then the MNO flags no network ticket as stalled
    When 25 hours pass
    Then the MNO's network ticket is "acknowledged"
    And the MNO flags the network ticket as stalled
    And the MVNE shows the network ticket as stalled

  @fp-5 @failure
  Scenario: The mno-sla-gap pack leaves even roaming tickets unworked
    Given the scenario "mno-sla-gap" is applied
    When the agent escalates the ticket to the network as "roaming"
    And 24 hours pass
    Then the MNO's network ticket is "acknowledged"
    And the MNO flags the network ticket as stalled

  @fp-5 @handling
  Scenario: A ticket below L3 cannot go to the network
    Given a severity 1 ticket at the care BPO
    When the agent escalates the ticket to the network as "coverage"
    Then the response status code is 409
    And the response property "$.code" is "TICKET_NOT_AT_L3"

  @fp-9 @failure
  Scenario: An MNO that refuses the ticket leaves the care ticket without a network ticket
    Given the MNO answers "createTroubleTicket" with 503
    When the agent escalates the ticket to the network as "coverage"
    Then the response status code is 502
