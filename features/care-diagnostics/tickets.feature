# Handoff: MVNO -> care BPO trouble tickets (TMF621), with tiers and SLA timers that the
#   diagnostics escalations feed.
# Owners: the care BPO keeps SLA timers by severity on the simulated clock and escalates
#   tiers; the MVNO's agents answer and park tickets on the customer.
# Guards against: tickets escalating or breaching unseen while diagnostics are missing
#   (fp-3), and clocks that keep running while the customer is the one to answer.
@care-diagnostics
Feature: Ticket SLAs and tiers run on the clock

  @fp-3 @failure
  Scenario: A ticket nobody answers breaches its response SLA
    Given a severity 1 ticket at the care BPO
    When 16 minutes pass
    Then the ticket's SLA is breached

  @fp-3 @handling
  Scenario: An answered ticket keeps its SLA
    Given a severity 1 ticket at the care BPO
    When 10 minutes pass
    And the agent adds the note "Looking into it"
    And 6 minutes pass
    Then the ticket's SLA is not breached

  @fp-3 @handling
  Scenario: The SLA clock stops while the ticket waits on the customer
    Given a severity 1 ticket at the care BPO
    When 10 minutes pass
    And the agent sets the ticket "pending"
    And 3 hours pass
    Then the ticket's SLA is not breached
    And the ticket is at tier "L1"

  @fp-3 @failure
  Scenario: A ticket left alone climbs a tier every half hour
    Given a severity 1 ticket at the care BPO
    When 31 minutes pass
    Then the ticket is at tier "L2"
    And the ticket escalated because "TIER_THRESHOLD"

  @fp-3 @handling
  Scenario: A closed ticket takes no more changes
    Given a severity 3 ticket at the care BPO
    When the agent sets the ticket "inProgress"
    And the agent sets the ticket "resolved"
    And the agent sets the ticket "closed"
    And the agent sets the ticket "inProgress"
    Then the response status code is 409
    And the response property "$.code" is "INVALID_STATUS_TRANSITION"
