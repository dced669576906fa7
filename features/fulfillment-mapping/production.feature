# Handoff: SIM vendor -> fulfillment (output file) -> MVNE inventory
#   (PUT /mvne/v1/simBatches/{batchNumber}).
# Owners: fulfillment (orders the batch, loads the vendor's file), MVNE (loads it exactly
#   once, all or nothing, or refuses it naming the row), SIM vendor (writes the file).
# Guards against: defective vendor files whose SIMs reach stock but not the MVNE, so that
#   every ICCID shipped from them is unmapped (fp-2).
@fulfillment-mapping
Feature: A SIM batch reaches the MVNE whole, or not at all

  @fp-2 @handling
  Scenario: A produced batch is loaded into the MVNE exactly as the vendor wrote it
    When the partner orders a batch of 3 UICC SIMs from the SIM vendor
    Then the response status code is 201
    And the response property "$.state" is "acknowledged"
    When 3 hours pass
    Then the batch is "loaded"
    And the MVNE holds 3 SIMs of the batch
    When the partner reads the SIM "${batch.firstIccid}"
    Then the response property "$.resourceStatus" is "available"

  @fp-2 @failure
  Scenario: A vendor file whose ICCIDs run off by one is refused whole, naming the row
    Given the scenario "bad-vendor-file" is applied
    When the partner orders a batch of 3 UICC SIMs from the SIM vendor
    And 3 hours pass
    Then the MVNE refused the batch with "RANGE_BROKEN" at row 2
    And the MVNE holds 0 SIMs of the batch
    When the partner ships a UICC SIM to the account "acct-1001"
    Then the response status code is 409
    And the response property "$.code" is "OUT_OF_STOCK"

  @fp-2 @failure
  Scenario: An eSIM file with 16-digit IMSIs is refused at its first row
    Given the scenario "bad-vendor-file" is applied
    When the partner orders a batch of 2 eSIM SIMs from the SIM vendor
    And 30 minutes pass
    Then the MVNE refused the batch with "IMSI_INVALID" at row 1
    And the MVNE holds 0 SIMs of the batch

  @fp-2 @handling
  Scenario: A file with more rows than its quantity is refused before anything loads
    Given the data fault "VENDOR_FILE_ROW_COUNT" is switched on for "createProductionOrder" at the fulfillment vendor
    When the partner orders a batch of 3 UICC SIMs from the SIM vendor
    And 3 hours pass
    Then the MVNE refused the batch with "QUANTITY_MISMATCH" at row 4
    And the MVNE holds 0 SIMs of the batch

  @fp-9 @handling
  Scenario: The load is retried while the MVNE answers 503 and loads once
    Given the MVNE answers "loadSimBatch" with 503 for the next 2 calls
    When the partner orders a batch of 3 UICC SIMs from the SIM vendor
    And 3 hours pass
    Then the batch is "loaded"
    And the response property "$.loadAttempts" is 3
    And the MVNE holds 3 SIMs of the batch
