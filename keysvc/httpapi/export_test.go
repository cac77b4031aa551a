package httpapi

// BodyLimits are the body limits of the routes that take a body, by
// method and route pattern.
var BodyLimits = map[string]int64{
	"POST /v1/sys/canary":                maxCanaryBody,
	"POST /v1/sys/join":                  maxJoinBody,
	"POST /v1/sys/init":                  maxInitBody,
	"POST /v1/ceremonies":                maxProposeBody,
	"POST /v1/ceremonies/{id}/approvals": maxApproveBody,
	"POST /v1/attestations":              maxAttestBody,
	"POST " + wrapRoute:                  maxWrapBody,
	"POST " + unwrapRoute:                maxUnwrapBody,
	"POST " + dataKeyRoute:               maxDataKeyBody,
	"POST " + rewrapRoute:                maxUnwrapBody,
	"POST " + wrapBatchRoute:             maxWrapBatchBody,
	"POST " + unwrapBatchRoute:           maxUnwrapBatchBody,
}
