# Handoff: MVNO network-API client -> MNO authorization server -> CAMARA APIs (bearer
#   access tokens, x-correlator).
# Owners: MNO (issues tokens per MVNO client, checks them on its simulated clock), MVNO
#   (keeps its client secret, renews tokens, sends a valid correlator).
# Guards against: calls without, with forged or with expired tokens reaching a line's data,
#   clients asking for APIs they never signed up for (fp-7), and unreadable refusals (fp-9).
@camara
Feature: Only a valid, unexpired token of the MVNO's own client opens the network APIs

  Background:
    Given the partner has an active subscription on "po-gb-payg"
    And the resource "/mno/device-roaming-status/v1/retrieve"
    And the request body property "$.device.phoneNumber" is set to "${subscription.msisdn}"

  @fp-7 @handling
  Scenario: A request without a token is 401 in CAMARA's shape
    Given the header "Authorization" is removed
    When the request "getRoamingStatus" is sent
    Then the response status code is 401
    And the response property "$.code" is "UNAUTHENTICATED"
    And the response complies with the contract

  @fp-7 @handling
  Scenario: A forged token is 401 and reveals nothing of the line
    Given the header "Authorization" is set to "Bearer eyJhbGciOiJIUzI1NiJ9.e30.forged"
    When the request "getRoamingStatus" is sent
    Then the response status code is 401
    And the response property "$.code" is "UNAUTHENTICATED"
    And the response body does not contain "${subscription.msisdn}"

  @fp-7 @handling
  Scenario: A token is refused once it expires on the network's clock
    Given the header "Authorization" is set to a valid access token
    When the request "getRoamingStatus" is sent
    Then the response status code is 200
    When 2 hours pass
    And the request "getRoamingStatus" is sent
    Then the response status code is 401
    And the response property "$.code" is "UNAUTHENTICATED"

  @fp-7 @handling
  Scenario: A client cannot get a token for an API its MVNO never signed up for
    Given the partner "mvno-bravo"
    When the network-API client asks for an access token for "number-verification:verify"
    Then the response status code is 400
    And the response property "$.error" is "invalid_scope"
    And the response property "$.error_description" contains "number-verification:verify"

  @fp-9 @handling
  Scenario: An x-correlator outside CAMARA's pattern is refused with 400
    Given the header "Authorization" is set to a valid access token
    And the header "x-correlator" is set to "no spaces allowed"
    When the request "getRoamingStatus" is sent
    Then the response status code is 400
    And the response property "$.code" is "INVALID_ARGUMENT"
