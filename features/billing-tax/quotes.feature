# Handoff: billing -> tax engine (POST /tax/v1/quotes, one quote per bill) and the
#   reconciliation of stored quotes (POST /tax/v1/reconciliations).
# Owners: billing sends the place of primary use and checks what comes back; the tax
#   engine places the address and quotes one line per jurisdiction level.
# Guards against: a jurisdiction that billing and the tax engine each assume the other
#   handles (fp-4): the quote succeeds, the invoice is under-taxed, nobody notices.
@billing-tax
Feature: Tax quotes carry every jurisdiction the address implies

  @fp-4 @handling
  Scenario: A Springfield quote has every level from federal USF to E911
    When the billing platform asks for tax on "25.00" of "wireless access" in "Springfield, IL"
    Then the response status code is 201
    And the response complies with the contract
    And the quote taxes the levels "federal, state, county, city, district, e911"
    And the quote's "city" tax goes to "US-IL-SPRINGFIELD"
    And the response property "$.totalTax" is "8.40"

  @fp-4 @failure
  Scenario: The jurisdiction gap makes a Springfield quote succeed without city tax
    Given the scenario "tax-jurisdiction-gap" is applied
    When the billing platform asks for tax on "25.00" of "wireless access" in "Springfield, IL"
    Then the response status code is 201
    And the quote taxes the levels "federal, state, county, district, e911"
    And the response property "$.totalTax" is "6.90"

  @fp-4 @handling
  Scenario: Reconciliation finds the city tax the gap left out
    Given the scenario "tax-jurisdiction-gap" is applied
    When the billing platform asks for tax on "25.00" of "wireless access" in "Springfield, IL"
    And the billing platform reconciles the quote
    Then the reconciliation finds "missingLevel" at the "city" level
    And the response property "$.results[0].expectedTax" is "8.40"

  @fp-4 @handling
  Scenario: A quote without faults reconciles clean
    When the billing platform asks for tax on "25.00" of "wireless access" in "Springfield, IL"
    And the billing platform reconciles the quote
    Then the reconciliation finds nothing

  @fp-4 @failure
  Scenario: A ZIP crossing city lines silently falls back to its default city
    Given the data fault "TAX_JURISDICTION_DEFAULTED" is switched on for "createTaxQuote" at the tax engine
    When the billing platform asks for tax on "25.00" of "wireless access" in "Leland Grove, IL"
    Then the quote's "city" tax goes to "US-IL-SPRINGFIELD"
    When the billing platform reconciles the quote
    Then the reconciliation finds "jurisdictionDiffers" at the "city" level

  @fp-4 @failure
  Scenario: An annexation the table never loaded leaves the area untaxed by the city
    Given the data fault "TAX_ANNEXATION_NOT_LOADED" is switched on for "createTaxQuote" at the tax engine
    When the billing platform asks for tax on "25.00" of "wireless access" in "the annexed area of Springfield, IL"
    Then the quote taxes the levels "federal, state, county, e911"
    When the billing platform reconciles the quote
    Then the reconciliation finds "missingLevel" at the "city" level

  @fp-4 @failure
  Scenario: The E911 fee sourced to the wrong district is caught by reconciliation
    Given the data fault "TAX_E911_WRONG_DISTRICT" is switched on for "createTaxQuote" at the tax engine
    When the billing platform asks for tax on "25.00" of "wireless access" in "Springfield, IL"
    Then the quote's "e911" tax goes to "US-IL-CHI-911"
    When the billing platform reconciles the quote
    Then the reconciliation finds "jurisdictionDiffers" at the "e911" level

  @fp-4 @handling
  Scenario: A P.O. Box is no place of primary use
    When the billing platform asks for tax on "25.00" of "wireless access" in "a P.O. Box in Springfield, IL"
    Then the response status code is 422
    And the response property "$.code" is "PO_BOX_NOT_PRIMARY_USE"
    And the response complies with the contract

  @fp-4 @handling
  Scenario: An address without a country is refused, not guessed
    When the billing platform asks for tax on "25.00" of "wireless access" in "Springfield, IL without a country"
    Then the response status code is 422
    And the response property "$.code" is "COUNTRY_REQUIRED"

  @fp-4 @handling
  Scenario: A transaction and service pair the engine does not know is refused naming the line
    When the billing platform asks for tax on "25.00" of "wireless roaming" in "Springfield, IL"
    Then the response status code is 422
    And the response property "$.code" is "UNKNOWN_TRANSACTION_SERVICE"

  @fp-4 @handling
  Scenario: A consumer in Germany pays German VAT
    When the billing platform asks for tax on "25.00" of "wireless access" in "Berlin, DE"
    Then the quote taxes the levels "vat"
    And the response property "$.lines[0].taxes[0].jurisdictionCode" is "DE"

  @fp-4 @handling
  Scenario: A business with a VAT ID in Spain is reverse charged
    When the billing platform asks for tax on "25.00" of "wireless access" in "Madrid, ES" for the VAT ID "ESX1234567X"
    Then the response status code is 201
    And the response property "$.lines[0].taxes[0].rate" is "0"

  @fp-9 @handling
  Scenario: A retried quote with the same idempotency key answers the first quote
    Given the resource "/tax/v1/quotes"
    And the header "Idempotency-Key" is set to "bill-2026-000123"
    And the request body is set to
      """
      {"documentId": "BILL-2026-000123", "date": "2026-03-31", "currency": "USD",
       "customer": {"type": "B2C"},
       "placeOfPrimaryUse": {"line1": "1 Main St", "city": "Springfield", "region": "IL",
                             "postalCode": "62701-1234", "country": "US"},
       "lines": [{"lineId": "1", "amount": "25.00", "transactionType": "wireless",
                  "serviceType": "access", "lineCount": 1}]}
      """
    When the request "createTaxQuote" is sent
    And the request "createTaxQuote" is sent
    Then the response status code is 201
    And the response header "Idempotent-Replayed" is "true"
