"""Fulfillment's refusals, each with a stable code the MVNO can branch on."""

from __future__ import annotations

from simulators.core.problems import Conflict, NotFound, Unprocessable


class ProductionOrderNotFound(NotFound):
    code = "PRODUCTION_ORDER_NOT_FOUND"
    title = "No such production order"


class ShipmentNotFound(NotFound):
    code = "SHIPMENT_NOT_FOUND"
    title = "No such shipment"


class SimNotFound(NotFound):
    code = "SIM_NOT_FOUND"
    title = "No such SIM in this partner's stock"


class ExternalIdExists(Conflict):
    code = "EXTERNAL_ID_EXISTS"
    title = "This externalId already names another resource of the partner"


class BatchNumberExists(Conflict):
    code = "BATCH_NUMBER_EXISTS"
    title = "The partner already ordered a batch with this number"


class RangeOverlap(Conflict):
    code = "RANGE_OVERLAP"
    title = "The ICCID or IMSI range overlaps a batch already ordered"


class RangeExhausted(Unprocessable):
    code = "RANGE_EXHAUSTED"
    title = "The range does not hold that many SIMs"


class VendorFileNotReady(Conflict):
    code = "VENDOR_FILE_NOT_READY"
    title = "The SIM vendor has not delivered the output file yet"


class OutOfStock(Conflict):
    code = "OUT_OF_STOCK"
    title = "No SIM of this profile type is in stock"


class SimNotAvailable(Conflict):
    code = "SIM_NOT_AVAILABLE"
    title = "The SIM is not available to ship"


class IccidNotInStock(Unprocessable):
    code = "ICCID_NOT_IN_STOCK"
    title = "The ICCID is not in this partner's stock"


class ProfileTypeMismatch(Unprocessable):
    code = "PROFILE_TYPE_MISMATCH"
    title = "The SIM is not of the profile type asked for"


class AddressRequired(Unprocessable):
    code = "ADDRESS_REQUIRED"
    title = "A physical SIM needs a delivery address"


class ServiceLevelNotAvailable(Unprocessable):
    code = "SERVICE_LEVEL_NOT_AVAILABLE"
    title = "This service level does not apply to this profile type"


class EidNotApplicable(Unprocessable):
    code = "EID_NOT_APPLICABLE"
    title = "Only an eSIM profile is bound to a device's EID"


class EidInvalid(Unprocessable):
    code = "EID_INVALID"
    title = "The EID's check digits are wrong (SGP.29: the number mod 97 must be 1)"


class NotAnEsim(Unprocessable):
    code = "NOT_AN_ESIM"
    title = "The SIM is a physical card, not an eSIM profile"


class MatchingIdMismatch(Unprocessable):
    code = "MATCHING_ID_MISMATCH"
    title = "The matching ID is not the one of this profile's activation code"


class ProfileNotReleased(Conflict):
    code = "PROFILE_NOT_RELEASED"
    title = "The eSIM profile is not released for download"


class EidMismatch(Conflict):
    code = "EID_MISMATCH"
    title = "The eSIM profile is bound to another device"


class ShipmentNotDelivered(Conflict):
    code = "SHIPMENT_NOT_DELIVERED"
    title = "Only a delivered shipment is returned by the subscriber"


class ReturnExists(Conflict):
    code = "RETURN_EXISTS"
    title = "This shipment's SIM has already come back"


class ReturnNotPhysical(Unprocessable):
    code = "RETURN_NOT_PHYSICAL"
    title = "An eSIM profile is not sent back"
