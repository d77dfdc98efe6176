// Package policy decides who may do what: caller identities from X.509 certificates,
// grid-mapfile and rule files, quotas, and the audit log of every decision. It is
// filled in by the security issue; until then the container records the caller's
// identity in every request context and nothing is enforced.
package policy
