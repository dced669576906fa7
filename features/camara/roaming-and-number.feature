# Handoff: MVNO -> MNO CAMARA Device Roaming Status and Number Verification, answered from
#   what the network recorded (the visited network of the latest usage, the line a
#   subscriber authenticated on).
# Owners: MNO (the network's records and the APIs), MVNO (its client, e.g. fraud checks
#   and sign-up flows).
# Guards against: a verification that trusts a number the network did not authenticate
#   (fp-7), and roaming answers or outages a client cannot rely on (fp-9).
@camara
Feature: Roaming status and number verification answer from the network's own records

  Background:
    Given the partner has an active subscription on "po-gb-payg"
    And the header "x-correlator" is set to a UUID value

  @fp-9 @handling
  Scenario: A subscriber at home is not roaming
    Given the resource "/mno/device-roaming-status/v1/retrieve"
    And the header "Authorization" is set to a valid access token
    And the request body property "$.device.phoneNumber" is set to "${subscription.msisdn}"
    When the request "getRoamingStatus" is sent
    Then the response status code is 200
    And the response property "$.roaming" is false
    And the response property "$.device.phoneNumber" is "${subscription.msisdn}"
    And the response body complies with the OAS schema at "/components/schemas/RoamingStatusResponse"

  @fp-9 @handling
  Scenario: Usage on a visited network makes the device roaming in that country
    Given the subscriber uses 50 MB of data roaming on the network "208"
    And the resource "/mno/device-roaming-status/v1/retrieve"
    And the header "Authorization" is set to an access token the subscriber approved
    And the request body is set to
      """
      {}
      """
    When the request "getRoamingStatus" is sent
    Then the response status code is 200
    And the response property "$.roaming" is true
    And the response property "$.countryCode" is 208
    And the response property "$.countryName" contains "FR"
    And the response header "x-correlator" has same value as the request header "x-correlator"

  @fp-9 @failure
  Scenario: A roaming status outage answers 503 UNAVAILABLE
    Given the MNO answers "getRoamingStatus" with 503
    And the resource "/mno/device-roaming-status/v1/retrieve"
    And the header "Authorization" is set to a valid access token
    And the request body property "$.device.phoneNumber" is set to "${subscription.msisdn}"
    When the request "getRoamingStatus" is sent
    Then the response status code is 503
    And the response property "$.code" is "UNAVAILABLE"
    And the response property "$.status" is 503

  @fp-7 @handling
  Scenario: The subscriber's own number is verified, another number is not
    Given the resource "/mno/number-verification/v2/verify"
    And the header "Authorization" is set to a valid access token
    And the request body property "$.phoneNumber" is set to "${subscription.msisdn}"
    When the request "phoneNumberVerify" is sent
    Then the response status code is 200
    And the response property "$.devicePhoneNumberVerified" is true
    Given the request body property "$.phoneNumber" is set to "+447700900999"
    When the request "phoneNumberVerify" is sent
    Then the response property "$.devicePhoneNumberVerified" is false

  @fp-7 @failure
  Scenario: A token that authenticated no subscriber cannot verify a number
    Given the resource "/mno/number-verification/v2/verify"
    And the header "Authorization" is set to an access token for "number-verification:verify"
    And the request body property "$.phoneNumber" is set to "${subscription.msisdn}"
    When the request "phoneNumberVerify" is sent
    Then the response status code is 403
    And the response property "$.code" is "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK"
    And the response complies with the contract
