# Handoff: billing -> MVNE rated usage (TMF635 usage, read with the MVNO's own key) for
#   the bill run.
# Owners: the MVNE serves rated usage to partners whose agreement grants QUERY_USAGE;
#   billing bills it once, or names the accounts it could not bill.
# Guards against: a bill run that silently bills nothing when the MVNE refuses the
#   usage feed (fp-9), and usage billed twice (fp-8).
@billing-tax
Feature: The bill run reads rated usage from the MVNE

  @fp-9 @failure
  Scenario: A partner without usage access gets no bill and the run says why
    Given the partner "mvno-bravo"
    And the partner has an active subscription on "po-us-talk"
    And the subscription has a postpaid billing account in "Springfield, IL"
    When the bill run is due
    Then the bill run could not bill the account for "USAGE_UNAVAILABLE"

  @fp-8 @handling
  Scenario: Usage is billed once as its own line beside the plan fee
    Given the partner "mvno-charlie" is onboarded for "po-us-talk, po-us-data" in "US"
    And the partner has an active subscription on "po-us-talk"
    And the subscription has a postpaid billing account in "Springfield, IL"
    When the subscriber uses 30 minutes of voice
    And the bill run of the period has run
    Then the response property "$.billLine[*].lineType" is ["recurring", "usage"]
