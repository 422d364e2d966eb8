// Package signing owns the Standard Webhooks wire format: whsec_ secrets, the
// webhook-* headers, and the v1 HMAC-SHA256 signature over id, timestamp and body.
//
// A sender signs the exact bytes it sends with every secret active for the
// endpoint, so that during a rotation a receiver holding either the old or the new
// secret accepts the message. A receiver verifies with Verify, which accepts a
// message if any v1 signature in the header matches any of its secrets and the
// timestamp is within the tolerance.
//
// Spec: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
package signing

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names, lower case as the spec writes them (net/http canonicalises them on the wire).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

const (
	// SecretPrefix starts every secret shown to users.
	SecretPrefix = "whsec_"

	// SecretMinBytes and SecretMaxBytes bound a secret's decoded length, per the spec.
	SecretMinBytes = 24
	SecretMaxBytes = 64

	// SecretBytesDefault is the length of generated secrets.
	SecretBytesDefault = 32

	// ToleranceDefault is how far a timestamp may be from the verifier's clock, the
	// value every official verifier library uses.
	ToleranceDefault = 5 * time.Minute

	signatureVersion = "v1"
)

// Secret is the raw key behind a whsec_ string.
type Secret []byte

// GenerateSecret returns a new random secret of SecretBytesDefault bytes.
func GenerateSecret() (Secret, error) {
	secret := make(Secret, SecretBytesDefault)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generate secret: %w", err)
	}
	return secret, nil
}

// ParseSecret decodes a whsec_ string. The base64 may be padded or not; the official
// Go verifier needs padding, so String always writes it.
func ParseSecret(s string) (Secret, error) {
	encoded, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, errors.New(`secret must start with "whsec_"`)
	}
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(encoded)
	}
	if err != nil {
		return nil, errors.New("secret is not valid base64 after whsec_")
	}
	if len(raw) < SecretMinBytes || len(raw) > SecretMaxBytes {
		return nil, fmt.Errorf("secret must be %d to %d bytes, not %d", SecretMinBytes, SecretMaxBytes, len(raw))
	}
	return raw, nil
}

// String returns the secret as whsec_ followed by padded base64.
func (s Secret) String() string {
	return SecretPrefix + base64.StdEncoding.EncodeToString(s)
}

// Sign returns the value of the webhook-signature header: one "v1,<base64>" entry per
// secret, separated by spaces.
func Sign(msgID string, timestamp int64, body []byte, secrets ...Secret) string {
	var b strings.Builder
	for i, secret := range secrets {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(signatureVersion)
		b.WriteByte(',')
		b.WriteString(base64.StdEncoding.EncodeToString(mac(secret, msgID, timestamp, body)))
	}
	return b.String()
}

// SetHeaders signs body and sets the three webhook-* headers on h.
func SetHeaders(h http.Header, msgID string, timestamp time.Time, body []byte, secrets ...Secret) {
	ts := timestamp.Unix()
	h.Set(HeaderID, msgID)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, Sign(msgID, ts, body, secrets...))
}

func mac(secret Secret, msgID string, timestamp int64, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(msgID))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, timestamp, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verification errors. Verify wraps one of them.
var (
	ErrMissingHeaders      = errors.New("missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrInvalidTimestamp    = errors.New("webhook-timestamp is not a unix time in seconds")
	ErrTimestampTooOld     = errors.New("webhook-timestamp is too old")
	ErrTimestampTooNew     = errors.New("webhook-timestamp is too far in the future")
	ErrNoMatchingSignature = errors.New("no signature matches")
)

// VerifyOpts tunes Verify. A nil *VerifyOpts uses the defaults.
type VerifyOpts struct {
	// Now is the verifier's clock. Defaults to time.Now.
	Now func() time.Time

	// Tolerance is how far webhook-timestamp may be from Now, either way.
	// Defaults to ToleranceDefault.
	Tolerance time.Duration
}

// Verify checks a received message: the headers must be present, the timestamp
// within tolerance, and at least one v1 signature must match one of the secrets.
// Entries of other versions (v1a, …) are ignored.
func Verify(h http.Header, body []byte, secrets []Secret, opts *VerifyOpts) error {
	if opts == nil {
		opts = &VerifyOpts{}
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	tolerance := ToleranceDefault
	if opts.Tolerance > 0 {
		tolerance = opts.Tolerance
	}

	msgID, tsHeader, sigHeader := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if msgID == "" || tsHeader == "" || sigHeader == "" {
		return ErrMissingHeaders
	}
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return ErrInvalidTimestamp
	}
	switch delta := now().Sub(time.Unix(ts, 0)); {
	case delta > tolerance:
		return ErrTimestampTooOld
	case delta < -tolerance:
		return ErrTimestampTooNew
	}

	for _, entry := range strings.Fields(sigHeader) {
		version, encoded, ok := strings.Cut(entry, ",")
		if !ok || version != signatureVersion {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			continue
		}
		for _, secret := range secrets {
			if hmac.Equal(got, mac(secret, msgID, ts, body)) {
				return nil
			}
		}
	}
	return ErrNoMatchingSignature
}
