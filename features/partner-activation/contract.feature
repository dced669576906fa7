# Handoff: MVNO partner -> MVNE activation, read as a contract test in CAMARA's phrasing.
# Owners: the MVNE publishes contracts/mvne.yaml; any implementation of it (Handoff's fake
#   or a vendor's staging API, with --handoff-url mvne=...) must answer as it says.
# Guards against: answers a partner's client cannot rely on when a call fails (fp-9) and
#   correlation lost between the partner and the MVNE.
@partner-activation
Feature: The activation API answers as its contract says

  Background:
    Given the resource "/mvne/tmf-api/productOrderingManagement/v4/productOrder"
    And the header "X-API-Key" is set to a valid access token
    And the header "X-Correlation-ID" is set to a UUID value

  @fp-9 @handling
  Scenario: A valid order is created and echoes the correlation ID
    Given the partner has an available SIM
    And the request body is set to
      | property                                                   | value          |
      | $.externalId                                               | camara-0001    |
      | $.productOrderItem[0].id                                   | "1"            |
      | $.productOrderItem[0].action                               | add            |
      | $.productOrderItem[0].productOffering.id                   | po-gb-payg     |
      | $.productOrderItem[0].product.productCharacteristic[0].name  | ICCID        |
      | $.productOrderItem[0].product.productCharacteristic[0].value | ${sim.iccid} |
    When the request "createProductOrder" is sent
    Then the response status code is 201
    And the response header "X-Correlation-ID" has same value as the request header "X-Correlation-ID"
    And the response header "Content-Type" is "application/json"
    And the response body complies with the OAS schema at "/components/schemas/ProductOrder"
    And the response property "$.externalId" is "camara-0001"

  @fp-9 @handling
  Scenario: A body that is not JSON is a problem document, not a crash
    Given the request body is set to
      """
      {"externalId":
      """
    When the request "createProductOrder" is sent
    Then the response status code is 400
    And the response header "Content-Type" is "application/problem+json"
    And the response property "$.code" is "MALFORMED_JSON"
    And the response complies with the contract

  @fp-9 @handling
  Scenario: A missing required member is named in the problem document
    Given the request body is set to
      """
      {"externalId": "camara-0002"}
      """
    When the request "createProductOrder" is sent
    Then the response status code is 400
    And the response property "$.field" is "productOrderItem"
    And the response header "X-Correlation-ID" has same value as the request header "X-Correlation-ID"

  @fp-9 @handling
  Scenario: An invalid correlation ID is refused with 400
    Given the header "X-Correlation-ID" is set to "no spaces allowed"
    When the request "listProductOrders" is sent
    Then the response status code is 400
    And the response complies with the contract

  @fp-7 @handling
  Scenario: A request without a key is 401 and says how to authenticate
    Given the header "X-API-Key" is removed
    When the request "listProductOrders" is sent
    Then the response status code is 401
    And the response property "$.code" is "UNAUTHENTICATED"
    And the response header "WWW-Authenticate" exists

  @fp-9 @handling
  Scenario: Orders are listed with paging and a total count
    Given the partner has an active subscription on "po-gb-payg"
    And the query parameter "limit" is set to "1"
    When the request "listProductOrders" is sent
    Then the response status code is 200
    And the response header "X-Total-Count" is "1"
    And the response property "$[0].state" is "completed"
    And the response complies with the contract
