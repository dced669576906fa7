# Handoff: MVNO -> MNO CAMARA SIM Swap (sim-swap v2), fed by the MVNE's SIM changes
#   (POST /mvne/v1/simChanges -> the network's TMF641 modify).
# Owners: MNO (authorization server and the API), MVNE (orders the SIM change from the
#   network), MVNO (its network-API client asks before a risky transaction).
# Guards against: a SIM change the API does not report, answers about another MVNO's lines
#   (fp-7), and refusals or outages a client cannot read (fp-9).
@camara
Feature: SIM Swap reports the SIM changes the MVNE makes, to the line's own MVNO only

  Background:
    Given the partner has an active subscription on "po-gb-payg"
    And the resource "/mno/sim-swap/v2/check"
    And the header "Authorization" is set to a valid access token
    And the header "x-correlator" is set to a UUID value

  @fp-9 @handling
  Scenario: A SIM change made through the MVNE is what SIM Swap reports
    Given 2 days pass
    And the header "Authorization" is set to a valid access token
    And the request body is set to
      """
      {"phoneNumber": "${subscription.msisdn}", "maxAge": 24}
      """
    When the request "checkSimSwap" is sent
    Then the response status code is 200
    And the response property "$.swapped" is false
    When the partner moves the subscription to a new SIM
    And the request "checkSimSwap" is sent
    Then the response property "$.swapped" is true
    And the response header "x-correlator" has same value as the request header "x-correlator"

  @fp-9 @handling
  Scenario: The date of the latest SIM change is retrieved
    Given the resource "/mno/sim-swap/v2/retrieve-date"
    And the partner moves the subscription to a new SIM
    And the request body property "$.phoneNumber" is set to "${subscription.msisdn}"
    When the request "retrieveSimSwapDate" is sent
    Then the response status code is 200
    And the response property "$.latestSimChange" exists
    And the response complies with the contract

  @fp-9 @handling
  Scenario: A maxAge beyond 2400 hours is out of range
    Given the request body is set to
      """
      {"phoneNumber": "${subscription.msisdn}", "maxAge": 2401}
      """
    When the request "checkSimSwap" is sent
    Then the response status code is 400
    And the response property "$.code" is "OUT_OF_RANGE"
    And the response property "$.status" is 400
    And the response header "x-correlator" has same value as the request header "x-correlator"

  @fp-9 @handling
  Scenario: SIM Swap does not apply to a data-only IoT line
    Given the MNO serves an IoT line "+447700900777" for the partner
    And the request body property "$.phoneNumber" is set to "${iot line.msisdn}"
    When the request "checkSimSwap" is sent
    Then the response status code is 422
    And the response property "$.code" is "SERVICE_NOT_APPLICABLE"
    And the response complies with the contract

  @fp-7 @handling
  Scenario: Another MVNO's number is not found, exactly like one the network does not serve
    Given the partner "mvno-bravo"
    And the header "Authorization" is set to a valid access token
    And the request body property "$.phoneNumber" is set to "${subscription.msisdn}"
    When the request "checkSimSwap" is sent
    Then the response status code is 404
    And the response property "$.code" is "IDENTIFIER_NOT_FOUND"
    And the response body does not contain "mvno-alpha"

  @fp-7 @handling
  Scenario: A two-legged token needs the number, a three-legged one must not name it
    Given the request body is set to
      """
      {"maxAge": 24}
      """
    When the request "checkSimSwap" is sent
    Then the response status code is 422
    And the response property "$.code" is "MISSING_IDENTIFIER"
    Given the header "Authorization" is set to an access token the subscriber approved
    And the request body property "$.phoneNumber" is set to "${subscription.msisdn}"
    When the request "checkSimSwap" is sent
    Then the response property "$.code" is "UNNECESSARY_IDENTIFIER"

  @fp-7 @handling
  Scenario: A token without the operation's scope is refused with 403
    Given the header "Authorization" is set to an access token for "device-roaming-status:read"
    And the request body property "$.phoneNumber" is set to "${subscription.msisdn}"
    When the request "checkSimSwap" is sent
    Then the response status code is 403
    And the response property "$.code" is "PERMISSION_DENIED"
    And the response header "WWW-Authenticate" exists

  @fp-9 @failure
  Scenario: A SIM Swap outage answers 503 in CAMARA's shape, echoing the correlator
    Given the MNO answers "checkSimSwap" with 503
    And the request body property "$.phoneNumber" is set to "${subscription.msisdn}"
    When the request "checkSimSwap" is sent
    Then the response status code is 503
    And the response property "$.code" is "UNAVAILABLE"
    And the response header "x-correlator" has same value as the request header "x-correlator"
