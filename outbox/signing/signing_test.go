package signing_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/signing"
)

// The two fixed vectors of the official libraries (Go/JS/Python tests and the Rust tests).
func TestSignStandardWebhooksVectors(t *testing.T) {
	t.Parallel()

	vectors := []struct {
		name, secret, msgID string
		timestamp           int64
		body, want          string
	}{
		{
			name:      "VectorA",
			secret:    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			msgID:     "msg_p5jXN8AQM9LWM0D4loKWxJek",
			timestamp: 1614265330,
			body:      `{"test": 2432232314}`,
			want:      "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		},
		{
			name:      "VectorB",
			secret:    "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
			msgID:     "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
			timestamp: 1649367553,
			body:      `{"email":"test@example.com","username":"test_user"}`,
			want:      "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
		},
	}
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			secret, err := signing.ParseSecret(v.secret)
			require.NoError(t, err)
			require.Equal(t, v.want, signing.Sign(v.msgID, v.timestamp, []byte(v.body), secret))

			h := http.Header{}
			h.Set(signing.HeaderID, v.msgID)
			h.Set(signing.HeaderTimestamp, strconv.FormatInt(v.timestamp, 10))
			h.Set(signing.HeaderSignature, v.want)
			at := func() time.Time { return time.Unix(v.timestamp, 0) }
			require.NoError(t, signing.Verify(h, []byte(v.body), []signing.Secret{secret}, &signing.VerifyOpts{Now: at}))
		})
	}
}

func TestOfficialVerifierAcceptsOurSignatures(t *testing.T) {
	t.Parallel()

	oldSecret, err := signing.GenerateSecret()
	require.NoError(t, err)
	newSecret, err := signing.GenerateSecret()
	require.NoError(t, err)
	body := []byte(`{"id":"evt_1","type":"agent.step.completed","data":{"step_id":"step-1"}}`)

	h := http.Header{}
	signing.SetHeaders(h, "evt_1", time.Now(), body, oldSecret, newSecret)
	require.Len(t, strings.Fields(h.Get(signing.HeaderSignature)), 2)

	// During a rotation a receiver with either secret accepts the message.
	for _, secret := range []signing.Secret{oldSecret, newSecret} {
		wh, err := standardwebhooks.NewWebhook(secret.String())
		require.NoError(t, err)
		require.NoError(t, wh.Verify(body, h))
	}

	other, err := signing.GenerateSecret()
	require.NoError(t, err)
	wh, err := standardwebhooks.NewWebhook(other.String())
	require.NoError(t, err)
	require.Error(t, wh.Verify(body, h))
}

func TestVerifyAcceptsOfficialSignatures(t *testing.T) {
	t.Parallel()

	secret, err := signing.GenerateSecret()
	require.NoError(t, err)
	wh, err := standardwebhooks.NewWebhook(secret.String())
	require.NoError(t, err)
	body := []byte(`{"hello":"world"}`)
	now := time.Now()
	sig, err := wh.Sign("evt_2", now, body)
	require.NoError(t, err)

	h := http.Header{}
	h.Set(signing.HeaderID, "evt_2")
	h.Set(signing.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(signing.HeaderSignature, sig)
	require.NoError(t, signing.Verify(h, body, []signing.Secret{secret}, nil))
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()

	secret, err := signing.GenerateSecret()
	require.NoError(t, err)
	body := []byte(`{"a":1}`)
	now := time.Unix(1_700_000_000, 0)
	signed := func(ts time.Time, b []byte) http.Header {
		h := http.Header{}
		signing.SetHeaders(h, "evt_3", ts, b, secret)
		return h
	}
	opts := &signing.VerifyOpts{Now: func() time.Time { return now }}

	tests := []struct {
		name   string
		header http.Header
		body   []byte
		want   error
	}{
		{"MissingHeaders", http.Header{}, body, signing.ErrMissingHeaders},
		{"TamperedBody", signed(now, body), []byte(`{"a":2}`), signing.ErrNoMatchingSignature},
		{"TooOld", signed(now.Add(-6*time.Minute), body), body, signing.ErrTimestampTooOld},
		{"TooNew", signed(now.Add(6*time.Minute), body), body, signing.ErrTimestampTooNew},
		{"BadTimestamp", func() http.Header {
			h := signed(now, body)
			h.Set(signing.HeaderTimestamp, "soon")
			return h
		}(), body, signing.ErrInvalidTimestamp},
		{"OnlyOtherVersions", func() http.Header {
			h := signed(now, body)
			sig := strings.TrimPrefix(h.Get(signing.HeaderSignature), "v1,")
			h.Set(signing.HeaderSignature, "v1a,"+sig+" v2,"+sig+" v1,")
			return h
		}(), body, signing.ErrNoMatchingSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.ErrorIs(t, signing.Verify(tt.header, tt.body, []signing.Secret{secret}, opts), tt.want)
		})
	}

	t.Run("JunkEntriesBesideAGoodOne", func(t *testing.T) {
		t.Parallel()
		h := signed(now, body)
		h.Set(signing.HeaderSignature, "v1,garbage v2,xyz "+h.Get(signing.HeaderSignature))
		require.NoError(t, signing.Verify(h, body, []signing.Secret{secret}, opts))
	})
}

func TestParseSecret(t *testing.T) {
	t.Parallel()

	secret, err := signing.GenerateSecret()
	require.NoError(t, err)
	parsed, err := signing.ParseSecret(secret.String())
	require.NoError(t, err)
	require.Equal(t, secret, parsed)

	// Unpadded base64 is accepted and re-emitted padded.
	unpadded := strings.TrimRight(secret.String(), "=")
	parsed, err = signing.ParseSecret(unpadded)
	require.NoError(t, err)
	require.Equal(t, secret.String(), parsed.String())

	for _, bad := range []struct{ in, msg string }{
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", `secret must start with "whsec_"`},
		{"whsec_!!!!", "secret is not valid base64 after whsec_"},
		{"whsec_c2hvcnQ=", "secret must be 24 to 64 bytes, not 5"},
	} {
		_, err := signing.ParseSecret(bad.in)
		require.EqualError(t, err, bad.msg)
	}
}
