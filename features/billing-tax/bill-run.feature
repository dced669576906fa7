# Handoff: billing -> tax engine inside the bill run: each bill's lines quoted once,
#   tax items per jurisdiction level on the bill; usage pulled from the MVNE.
# Owners: billing composes, taxes and issues bills, and holds a bill whose tax looks
#   wrong; the tax engine answers one quote per bill; the MVNE serves rated usage.
# Guards against: the untaxed invoice line of a jurisdiction gap (fp-4) and a tax
#   engine or MVNE that is down during the run (fp-9).
@billing-tax
Feature: The bill run taxes every bill through the tax engine

  Background:
    Given the partner "mvno-charlie" is onboarded for "po-us-talk, po-us-data" in "US"
    And the partner has an active subscription on "po-us-talk"
    And the subscription has a postpaid billing account in "Springfield, IL"

  @fp-4 @handling
  Scenario: A Springfield bill carries a tax item for every level
    When the bill run of the period has run
    Then the bill is "sent"
    And the bill has tax items for "federal, state, county, city, district, e911"
    And the response complies with the contract

  @fp-4 @failure
  Scenario: With the jurisdiction gap the bill goes out without city tax
    Given the scenario "tax-jurisdiction-gap" is applied
    When the bill run of the period has run
    Then the bill is "sent"
    And the bill has tax items for "federal, state, county, district, e911"

  @fp-4 @handling
  Scenario: Reconciling the bill's document finds the city tax it lacks
    Given the scenario "tax-jurisdiction-gap" is applied
    When the bill run of the period has run
    And the billing platform reconciles the bill's tax quote
    Then the reconciliation finds "missingLevel" at the "city" level

  @fp-4 @handling
  Scenario: A bill missing a level its country requires is held, not sent
    Given the fault rule
      """
      {"match": {"role": "tax", "operation": "createTaxQuote"},
       "effect": {"type": "data", "fault": "TAX_JURISDICTION_NOT_FOUND", "level": "state"}}
      """
    When the bill run of the period has run
    Then the bill is "onHold"

  @fp-9 @handling
  Scenario: A tax engine down at the bill run delays the bills instead of issuing them untaxed
    Given the tax engine answers "createTaxQuote" with 503 for the next 3 calls
    When the bill run of the period has run
    Then the bill is "sent"
    And the bill has tax items for "federal, state, county, city, district, e911"
