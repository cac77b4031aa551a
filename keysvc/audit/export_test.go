package audit

// The canonical line of a record, and its decoding, for the tests.
var (
	EncodeRecord = encodeRecord
	DecodeRecord = decodeRecord
)
