# Handoff: care BPO -> MVNE diagnostic API (/mvne/diagnostics/v1, care-agent credential
#   per MVNO, scope DIAGNOSTICS).
# Owners: the MVNE grants each MVNO's care agents the diagnostic scope and answers with
#   SIM, network, balance and provisioning history; the care BPO escalates when it cannot
#   see them, and reports how long that took.
# Guards against: care agents without diagnostic access to MVNE data (fp-3), and an MVNE
#   that does not answer the BPO (fp-9).
@care-diagnostics
Feature: Care agents diagnose subscribers through the MVNE

  @fp-3 @handling
  Scenario: Diagnostics with the scope become a note and the ticket stays at L1
    Given the partner has an active subscription on "po-gb-payg"
    And the subscriber has a severity 1 ticket at the care BPO
    When the agent runs diagnostics on the ticket
    Then the response status code is 200
    And the response complies with the contract
    And the ticket is at tier "L1"
    And the ticket's last note mentions "${subscription.msisdn}"
    And the ticket's last note mentions "Network (mno)"

  @fp-3 @failure
  Scenario: An MVNO whose care agents lack the scope sees its tickets escalate blind
    Given the partner "mvno-bravo"
    And the partner has an active subscription on "po-us-talk"
    And the subscriber has a severity 1 ticket at the care BPO
    When 5 minutes pass
    And the agent runs diagnostics on the ticket
    Then the ticket is at tier "L2"
    And the ticket escalated because "DIAGNOSTICS_UNAVAILABLE"
    And the ticket's last note mentions "DIAGNOSTIC_SCOPE_MISSING"
    And the care report shows a diagnostics escalation after 5 minutes

  @fp-3 @failure
  Scenario: The care-without-diagnostics pack withdraws the scope from every agent
    Given the partner has an active subscription on "po-gb-payg"
    And the scenario "care-without-diagnostics" is applied
    And the subscriber has a severity 1 ticket at the care BPO
    When 1 minute passes
    And the agent runs diagnostics on the ticket
    Then the ticket is at tier "L2"
    And the care report shows a diagnostics escalation after 1 minutes

  @fp-3 @handling
  Scenario: The MVNE answers a care agent with the scope, and refuses one without it
    Given the partner has an active subscription on "po-gb-payg"
    When the care agent of "mvno-alpha" reads the subscription's diagnostics
    Then the response status code is 200
    And the response property "$.sim.iccid" is "${sim.iccid}"
    And the response property "$.network.source" is "mno"
    And the response complies with the contract
    When the care agent of "mvno-bravo" reads the subscription's diagnostics
    Then the response status code is 403
    And the response property "$.code" is "DIAGNOSTIC_SCOPE_MISSING"

  @fp-3 @handling
  Scenario: A partner's own key is not a care-agent credential
    Given the partner has an active subscription on "po-gb-payg"
    And the resource "/mvne/diagnostics/v1/subscription/{id}"
    And the path parameter "id" is set to "${subscription.id}"
    And the caller is "mvno-alpha"
    And the header "X-API-Key" is set to a valid access token
    When the request "getSubscriptionDiagnostics" is sent
    Then the response status code is 401

  @fp-9 @failure
  Scenario: An MVNE that does not answer the BPO is a 502, and the ticket is untouched
    Given the partner has an active subscription on "po-gb-payg"
    And the subscriber has a severity 2 ticket at the care BPO
    And the MVNE answers "getSubscriptionDiagnostics" with 503
    When the agent runs diagnostics on the ticket
    Then the response status code is 502
    And the response property "$.code" is "MVNE_UNAVAILABLE"
    And the ticket is at tier "L1"
