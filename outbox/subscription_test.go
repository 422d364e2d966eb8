package outbox_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
	"github.com/outboxd/outboxd/outbox/signing"
)

var subscriptionIDPattern = regexp.MustCompile(`^sub_[0-9a-f]{32}$`)

// newSecret returns n random bytes as a signing secret.
func newSecret(t *testing.T, n int) signing.Secret {
	t.Helper()
	secret := make(signing.Secret, n)
	_, err := rand.Read(secret)
	require.NoError(t, err)
	return secret
}

// guardedStore is a store with the default guard, which blocks loopback, private
// and metadata addresses.
func guardedStore(t *testing.T) *outbox.Store {
	t.Helper()
	store, err := outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{Schema: outboxtest.Schema(t), Keyring: outboxtest.Keyring(t)})
	require.NoError(t, err)
	return store
}

func TestSubscriptionCreate(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx   context.Context
		store *outbox.Store
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{ctx: context.Background(), store: outboxtest.Store(t)}
	}

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		before := time.Now()
		result := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{URL: "http://127.0.0.1:8080/hooks"})
		require.Regexp(t, subscriptionIDPattern, result.ID)
		require.Equal(t, "http://127.0.0.1:8080/hooks", result.URL)
		require.Equal(t, []string{"*"}, result.EventTypes)
		require.True(t, result.Enabled)
		require.Empty(t, result.AgentID)
		require.Empty(t, result.OrganizationID)
		require.Empty(t, result.Description)
		require.Equal(t, []string{}, result.HeaderNames)
		require.Nil(t, result.RetrySchedule)
		require.Empty(t, result.DisabledReason)
		require.Nil(t, result.DisabledAt)
		require.WithinDuration(t, before, result.CreatedAt, time.Minute)
		require.True(t, result.CreatedAt.Equal(result.UpdatedAt))
		require.Len(t, result.Secret, signing.SecretBytesDefault)
		require.Len(t, result.Secret, 32)
		require.GreaterOrEqual(t, idMillis(t, result.ID, "sub_"), result.CreatedAt.UnixMilli())

		other := outboxtest.Subscription(b.ctx, t, b.store, nil)
		require.NotEqual(t, result.ID, other.ID)
		require.NotEqual(t, result.Secret, other.Secret, "every subscription gets its own secret")

		got, err := b.store.SubscriptionGet(b.ctx, result.ID)
		require.NoError(t, err)
		require.Equal(t, result.Subscription, got)
	})

	t.Run("KeepsGivenFields", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		secret := newSecret(t, 40)
		params := &outbox.SubscriptionCreateParams{
			URL:            "https://[::1]:8443/hooks?tenant=1",
			EventTypes:     []string{"agent.step.*", "agent.run.completed"},
			AgentID:        "agent-1",
			OrganizationID: "org-1",
			Description:    "billing receiver",
			Headers:        map[string]string{"Authorization": "Bearer xyz", "X-Tenant": "t\t1"},
			RetrySchedule:  outbox.RetrySchedule{time.Millisecond, 1500 * time.Millisecond, 2 * time.Hour},
			Secret:         secret,
		}
		result, err := b.store.SubscriptionCreate(b.ctx, params)
		require.NoError(t, err)
		require.Equal(t, secret, result.Secret)

		got, err := b.store.SubscriptionGet(b.ctx, result.ID)
		require.NoError(t, err)
		require.Equal(t, result.Subscription, got)
		require.Equal(t, params.URL, got.URL)
		require.Equal(t, params.EventTypes, got.EventTypes)
		require.Equal(t, "agent-1", got.AgentID)
		require.Equal(t, "org-1", got.OrganizationID)
		require.Equal(t, "billing receiver", got.Description)
		require.Equal(t, []string{"Authorization", "X-Tenant"}, got.HeaderNames, "names only: values are write-only")
		require.Equal(t, params.RetrySchedule, got.RetrySchedule)

		// The stored secret and header values open to the ones given.
		target, err := b.store.DeliveryTarget(b.ctx, "evt_none", result.ID)
		require.NoError(t, err)
		require.Equal(t, []signing.Secret{secret}, target.Secrets)
		require.Equal(t, params.Headers, target.Headers)
	})

	t.Run("AcceptsSecretLengthBounds", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		for _, n := range []int{signing.SecretMinBytes, signing.SecretMaxBytes} {
			secret := newSecret(t, n)
			result, err := b.store.SubscriptionCreate(b.ctx, &outbox.SubscriptionCreateParams{URL: "http://127.0.0.1/", Secret: secret})
			require.NoError(t, err, n)
			require.Equal(t, secret, result.Secret)
		}
	})

	t.Run("JSONShowsSecretOnlyOnCreate", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		result := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{AgentID: "agent-1"})
		whsec := result.Secret.String()
		require.True(t, strings.HasPrefix(whsec, "whsec_"))

		data, err := json.Marshal(result)
		require.NoError(t, err)
		require.Contains(t, string(data), `"secret":"`+whsec+`"`)
		var fields map[string]any
		require.NoError(t, json.Unmarshal(data, &fields))
		require.Equal(t, whsec, fields["secret"])
		require.Equal(t, result.ID, fields["id"], "the subscription's own fields are inlined")
		require.Equal(t, "agent-1", fields["agent_id"])
		parsed, err := signing.ParseSecret(fields["secret"].(string))
		require.NoError(t, err)
		require.Equal(t, result.Secret, parsed)

		got, err := b.store.SubscriptionGet(b.ctx, result.ID)
		require.NoError(t, err)
		for _, sub := range []*outbox.Subscription{result.Subscription, got} {
			data, err := json.Marshal(sub)
			require.NoError(t, err)
			require.NotContains(t, string(data), "secret")
			require.NotContains(t, string(data), "whsec_")
			require.NotContains(t, string(data), base64.StdEncoding.EncodeToString(result.Secret))
		}
	})

	t.Run("SecretEncryptedAtRest", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		result := outboxtest.Subscription(b.ctx, t, b.store, nil)
		forms := map[string][]byte{
			"raw":        result.Secret,
			"base64":     []byte(base64.StdEncoding.EncodeToString(result.Secret)),
			"base64-raw": []byte(base64.RawStdEncoding.EncodeToString(result.Secret)),
			"hex":        []byte(hex.EncodeToString(result.Secret)),
			"whsec":      []byte(result.Secret.String()),
		}

		var (
			count      int
			keyID      string
			ciphertext []byte
			dump       string
		)
		err := outboxtest.Pool(t).QueryRow(b.ctx, fmt.Sprintf(
			`SELECT count(*) OVER (), key_id, ciphertext, row_to_json(s)::text FROM %s.subscription_secrets AS s WHERE subscription_id = $1`,
			b.store.Schema()), result.ID).Scan(&count, &keyID, &ciphertext, &dump)
		require.NoError(t, err)
		require.Equal(t, 1, count)
		require.NotEmpty(t, keyID)
		require.Greater(t, len(ciphertext), len(result.Secret), "nonce and tag are stored with the ciphertext")
		for name, form := range forms {
			require.False(t, bytes.Contains(ciphertext, form), "ciphertext holds the %s secret", name)
			require.NotContains(t, dump, string(form), "row holds the %s secret", name)
		}

		// Nor anywhere in the subscription's own row.
		var subDump string
		err = outboxtest.Pool(t).QueryRow(b.ctx, fmt.Sprintf(`SELECT row_to_json(s)::text FROM %s.subscriptions AS s WHERE id = $1`, b.store.Schema()), result.ID).Scan(&subDump)
		require.NoError(t, err)
		for name, form := range forms {
			require.NotContains(t, subDump, string(form), "subscription row holds the %s secret", name)
		}
	})

	t.Run("SealedSecretIsBoundToItsSubscription", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		victim := outboxtest.Subscription(b.ctx, t, b.store, nil)
		attacker := outboxtest.Subscription(b.ctx, t, b.store, nil)
		// Copy the victim's sealed secret onto the attacker's subscription.
		_, err := outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf(
			`UPDATE %[1]s.subscription_secrets SET ciphertext = (SELECT ciphertext FROM %[1]s.subscription_secrets WHERE subscription_id = $1) WHERE subscription_id = $2`,
			b.store.Schema()), victim.ID, attacker.ID)
		require.NoError(t, err)
		_, err = b.store.DeliveryTarget(b.ctx, "evt_none", attacker.ID)
		require.Error(t, err)
		require.Contains(t, err.Error(), "authentication failed")
	})

	t.Run("NoEncryptionKey", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		keyless, err := outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{Schema: b.store.Schema(), Guard: outboxtest.LoopbackGuard()})
		require.NoError(t, err)
		result, err := keyless.SubscriptionCreate(b.ctx, &outbox.SubscriptionCreateParams{URL: "http://127.0.0.1:9/"})
		require.Nil(t, result)
		require.ErrorIs(t, err, outbox.ErrNoEncryptionKey)
		require.Contains(t, err.Error(), "OUTBOXD_ENCRYPTION_KEY")
		require.Zero(t, countRows(b.ctx, t, b.store, "subscriptions"))
		require.Zero(t, countRows(b.ctx, t, b.store, "subscription_secrets"))

		// Bad input is still reported as such first.
		_, err = keyless.SubscriptionCreate(b.ctx, &outbox.SubscriptionCreateParams{})
		requireValidationError(t, err, "url", "required")
	})

	t.Run("InCallersTransaction", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		tx := begin(b.ctx, t, outboxtest.Pool(t))
		result, err := b.store.SubscriptionCreateTx(b.ctx, tx, &outbox.SubscriptionCreateParams{URL: "http://127.0.0.1/"})
		require.NoError(t, err)
		require.NoError(t, tx.Rollback(b.ctx))
		_, err = b.store.SubscriptionGet(b.ctx, result.ID)
		require.ErrorIs(t, err, outbox.ErrNotFound)
		require.Zero(t, countRows(b.ctx, t, b.store, "subscription_secrets"))

		tx = begin(b.ctx, t, outboxtest.Pool(t))
		result, err = b.store.SubscriptionCreateTx(b.ctx, tx, &outbox.SubscriptionCreateParams{URL: "http://127.0.0.1/"})
		require.NoError(t, err)
		require.NoError(t, tx.Commit(b.ctx))
		_, err = b.store.SubscriptionGet(b.ctx, result.ID)
		require.NoError(t, err)
		require.Equal(t, 1, countRows(b.ctx, t, b.store, "subscription_secrets"))
	})
}

func TestSubscriptionCreateValidation(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	// Every case is refused, so one store serves them all and must stay empty.
	store := guardedStore(t)

	many := func(n int, value string) []string {
		list := make([]string, n)
		for i := range list {
			list[i] = value
		}
		return list
	}
	tests := []struct {
		name    string
		params  outbox.SubscriptionCreateParams
		field   string
		message string
	}{
		{"MissingURL", outbox.SubscriptionCreateParams{}, "url", "required"},
		{"FileURL", outbox.SubscriptionCreateParams{URL: "file:///etc/passwd"}, "url", `scheme must be http or https, not "file"`},
		{"FTPURL", outbox.SubscriptionCreateParams{URL: "ftp://1.1.1.1/"}, "url", `scheme must be http or https, not "ftp"`},
		{"RelativeURL", outbox.SubscriptionCreateParams{URL: "/hooks"}, "url", "scheme must be http or https"},
		{"NoHost", outbox.SubscriptionCreateParams{URL: "http:///hooks"}, "url", "must have a host"},
		{"Unparsable", outbox.SubscriptionCreateParams{URL: "http://[::1"}, "url", "not a valid URL"},
		{"Credentials", outbox.SubscriptionCreateParams{URL: "https://user:pass@1.1.1.1/hooks"}, "url", "must not contain a user name or password"},
		{"UserOnly", outbox.SubscriptionCreateParams{URL: "https://user@1.1.1.1/hooks"}, "url", "must not contain a user name or password"},
		{"Fragment", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/hooks#frag"}, "url", "fragment"},
		{"BadPort", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1:0/"}, "url", "port"},
		{"Loopback", outbox.SubscriptionCreateParams{URL: "http://127.0.0.1:8080/hooks"}, "url", "loopback"},
		{"LoopbackOther", outbox.SubscriptionCreateParams{URL: "http://127.1.2.3/"}, "url", "loopback"},
		{"Localhost", outbox.SubscriptionCreateParams{URL: "http://localhost:8080/hooks"}, "url", "loopback"},
		{"LocalhostSubdomain", outbox.SubscriptionCreateParams{URL: "http://api.localhost/"}, "url", "loopback"},
		{"IPv6Loopback", outbox.SubscriptionCreateParams{URL: "http://[::1]/"}, "url", "loopback"},
		{"IPv4MappedLoopback", outbox.SubscriptionCreateParams{URL: "http://[::ffff:127.0.0.1]/"}, "url", "loopback"},
		{"Metadata", outbox.SubscriptionCreateParams{URL: "http://169.254.169.254/latest/meta-data/"}, "url", "link-local"},
		{"Private", outbox.SubscriptionCreateParams{URL: "https://10.1.2.3/hooks"}, "url", "private"},
		{"Unspecified", outbox.SubscriptionCreateParams{URL: "http://0.0.0.0/"}, "url", "this-network"},
		{"TooLong", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/" + strings.Repeat("a", 2048)}, "url", "longer than 2048 characters"},
		{"PatternTrailingDot", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", EventTypes: []string{"agent.step."}}, "event_types", `"agent.step." is not an event type`},
		{"PatternUpperCase", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", EventTypes: []string{"Agent.*"}}, "event_types", `"Agent.*" is not an event type`},
		{"PatternDoubleStar", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", EventTypes: []string{"**"}}, "event_types", `"**" is not an event type`},
		{"PatternEmpty", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", EventTypes: []string{""}}, "event_types", `"" is not an event type`},
		{"PatternOneWord", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", EventTypes: []string{"agent"}}, "event_types", `"agent" is not an event type`},
		{"PatternInnerStar", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", EventTypes: []string{"agent.*.completed"}}, "event_types", "is not an event type"},
		{"PatternAmongGood", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", EventTypes: []string{"agent.step.*", "bad type"}}, "event_types", `"bad type"`},
		{"TooManyPatterns", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", EventTypes: many(101, "agent.step.*")}, "event_types", "at most 100 patterns"},
		{"ReservedSignatureHeader", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", Headers: map[string]string{"Webhook-Signature": "v1,forged"}}, "headers", `header "Webhook-Signature" is set by outboxd`},
		{"ReservedContentType", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", Headers: map[string]string{"Content-Type": "text/plain"}}, "headers", `header "Content-Type" is set by outboxd`},
		{"ReservedLowerCase", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", Headers: map[string]string{"webhook-id": "x"}}, "headers", "is set by outboxd"},
		{"ReservedHost", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", Headers: map[string]string{"Host": "internal"}}, "headers", "is set by outboxd"},
		{"HeaderValueCRLF", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", Headers: map[string]string{"X-Token": "a\r\nX-Injected: 1"}}, "headers", `header "X-Token" has an invalid value`},
		{"HeaderValueLF", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", Headers: map[string]string{"X-Token": "a\nb"}}, "headers", "invalid value"},
		{"HeaderValueNUL", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", Headers: map[string]string{"X-Token": "a\x00b"}}, "headers", "invalid value"},
		{"HeaderNameSpace", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", Headers: map[string]string{"X Token": "a"}}, "headers", `"X Token" is not a valid header name`},
		{"HeaderNameColon", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", Headers: map[string]string{"X-Token:": "a"}}, "headers", "not a valid header name"},
		{"HeaderNameEmpty", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", Headers: map[string]string{"": "a"}}, "headers", "not a valid header name"},
		{"RetryZeroDelay", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", RetrySchedule: outbox.RetrySchedule{time.Second, 0}}, "retry_schedule", "delay 0s is out of range"},
		{"RetryNegativeDelay", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", RetrySchedule: outbox.RetrySchedule{-time.Second}}, "retry_schedule", "delay -1s is out of range"},
		{"RetrySubMillisecond", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", RetrySchedule: outbox.RetrySchedule{time.Microsecond}}, "retry_schedule", "out of range"},
		{"RetryTooLong", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", RetrySchedule: outbox.RetrySchedule{8 * 24 * time.Hour}}, "retry_schedule", "out of range"},
		{"RetryTooMany", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", RetrySchedule: make(outbox.RetrySchedule, 51)}, "retry_schedule", "at most 50 retries, not 51"},
		{"SecretTooShort", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", Secret: make(signing.Secret, 16)}, "secret", "must be 24 to 64 bytes"},
		{"SecretTooLong", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", Secret: make(signing.Secret, 65)}, "secret", "must be 24 to 64 bytes"},
		{"SecretEmpty", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", Secret: signing.Secret{}}, "secret", "must be 24 to 64 bytes"},
		{"AgentIDTooLong", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", AgentID: strings.Repeat("a", 256)}, "agent_id", "1 to 255 characters"},
		{"OrganizationIDTooLong", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", OrganizationID: strings.Repeat("o", 256)}, "organization_id", "1 to 255 characters"},
		{"DescriptionTooLong", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", Description: strings.Repeat("d", 1025)}, "description", "at most 1024 characters"},
		{"DescriptionMultibyte", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", Description: strings.Repeat("é", 1025)}, "description", "at most 1024 characters"},
		{"DescriptionNUL", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", Description: "a\x00b"}, "description", `must not contain NUL characters (\u0000)`},
		{"DescriptionInvalidUTF8", outbox.SubscriptionCreateParams{URL: "https://1.1.1.1/", Description: "a\xffb"}, "description", "must be valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			result, err := store.SubscriptionCreate(ctx, &tt.params)
			require.Nil(t, result)
			requireValidationError(t, err, tt.field, tt.message)
			require.Zero(t, countRows(ctx, t, store, "subscriptions"), "bad input changes nothing")
			require.Zero(t, countRows(ctx, t, store, "subscription_secrets"))
		})
	}
}

func TestSubscriptionCreateGuard(t *testing.T) {
	t.Parallel()

	ctx := context.Background()

	t.Run("DefaultGuardAcceptsPublicAddresses", func(t *testing.T) {
		t.Parallel()

		store := guardedStore(t)
		for _, url := range []string{"https://1.1.1.1/hooks", "http://8.8.8.8:8080/x?y=1", "https://[2606:4700:4700::1111]/hooks"} {
			result, err := store.SubscriptionCreate(ctx, &outbox.SubscriptionCreateParams{URL: url})
			require.NoError(t, err, url)
			require.Equal(t, url, result.URL)
		}
		require.Equal(t, 3, countRows(ctx, t, store, "subscriptions"))
	})

	t.Run("AllowListAdmitsLoopback", func(t *testing.T) {
		t.Parallel()

		store := outboxtest.Store(t) // LoopbackGuard
		for _, url := range []string{"http://127.0.0.1:8080/hooks", "http://[::1]/", "http://localhost:9/"} {
			_, err := store.SubscriptionCreate(ctx, &outbox.SubscriptionCreateParams{URL: url})
			require.NoError(t, err, url)
		}
		// Only loopback: other private ranges stay blocked.
		_, err := store.SubscriptionCreate(ctx, &outbox.SubscriptionCreateParams{URL: "http://169.254.169.254/"})
		requireValidationError(t, err, "url", "link-local")
		_, err = store.SubscriptionCreate(ctx, &outbox.SubscriptionCreateParams{URL: "http://192.168.1.1/"})
		requireValidationError(t, err, "url", "private")
	})
}

func TestSubscriptionConstraints(t *testing.T) {
	t.Parallel()

	// What the database itself refuses, for rows written around the store.
	ctx := context.Background()
	store := outboxtest.Store(t)
	tests := []struct {
		name       string
		columns    string
		values     string
		constraint string
	}{
		{"FileURL", "url", "'file:///etc/passwd'", "subscriptions_url_scheme"},
		{"BadPattern", "url, event_types", "'https://1.1.1.1/', '{Agent.*}'", "subscriptions_event_types_valid"},
		{"NoPatterns", "url, event_types", "'https://1.1.1.1/', '{}'", "subscriptions_event_types_valid"},
		{"NullPattern", "url, event_types", "'https://1.1.1.1/', '{NULL}'", "subscriptions_event_types_valid"},
		{"ZeroDelay", "url, retry_schedule_ms", "'https://1.1.1.1/', '{1000,0}'", "subscriptions_retry_schedule_valid"},
		{"NegativeDelay", "url, retry_schedule_ms", "'https://1.1.1.1/', '{-5}'", "subscriptions_retry_schedule_valid"},
		{"HeadersNotObject", "url, headers", "'https://1.1.1.1/', '[]'", "subscriptions_headers_object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			_, err := outboxtest.Pool(t).Exec(ctx, fmt.Sprintf("INSERT INTO %s.subscriptions (%s) VALUES (%s)", store.Schema(), tt.columns, tt.values))
			pgErr := requirePgError(t, err)
			require.Equal(t, "23514", pgErr.Code)
			require.Equal(t, tt.constraint, pgErr.ConstraintName)
			require.Zero(t, countRows(ctx, t, store, "subscriptions"))
		})
	}
}

func TestSubscriptionGet(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	store := outboxtest.Store(t)
	created := outboxtest.Subscription(ctx, t, store, &outboxtest.SubscriptionOpts{
		EventTypes:     []string{"agent.step.*"},
		AgentID:        "agent-1",
		OrganizationID: "org-1",
		Headers:        map[string]string{"X-Tenant": "1"},
		RetrySchedule:  outbox.RetrySchedule{time.Second},
	})

	got, err := store.SubscriptionGet(ctx, created.ID)
	require.NoError(t, err)
	require.Equal(t, created.Subscription, got)

	for _, id := range []string{"sub_00000000000000000000000000000000", "", "not-an-id"} {
		_, err = store.SubscriptionGet(ctx, id)
		require.ErrorIs(t, err, outbox.ErrNotFound, id)
	}
}

func TestSubscriptionList(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx       context.Context
		store     *outbox.Store
		agentOrg  *outbox.SubscriptionCreateResult // agent-1 in org-1
		agent     *outbox.SubscriptionCreateResult // agent-1
		org       *outbox.SubscriptionCreateResult // org-1
		global    *outbox.SubscriptionCreateResult
		disabled  *outbox.SubscriptionCreateResult // global, disabled
		otherOrgs *outbox.SubscriptionCreateResult // agent-2 in org-2
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		ctx := context.Background()
		store := outboxtest.Store(t)
		b := &testBundle{
			ctx:       ctx,
			store:     store,
			agentOrg:  outboxtest.Subscription(ctx, t, store, &outboxtest.SubscriptionOpts{AgentID: "agent-1", OrganizationID: "org-1"}),
			agent:     outboxtest.Subscription(ctx, t, store, &outboxtest.SubscriptionOpts{AgentID: "agent-1"}),
			org:       outboxtest.Subscription(ctx, t, store, &outboxtest.SubscriptionOpts{OrganizationID: "org-1"}),
			global:    outboxtest.Subscription(ctx, t, store, nil),
			disabled:  outboxtest.Subscription(ctx, t, store, nil),
			otherOrgs: outboxtest.Subscription(ctx, t, store, &outboxtest.SubscriptionOpts{AgentID: "agent-2", OrganizationID: "org-2"}),
		}
		disabled, err := store.SubscriptionDisable(ctx, b.disabled.ID, "test")
		require.NoError(t, err)
		require.True(t, disabled)
		return b
	}
	ids := func(subs []*outbox.Subscription) []string {
		list := make([]string, len(subs))
		for i, s := range subs {
			list[i] = s.ID
		}
		return list
	}
	sorted := func(list ...string) []string {
		list = slices.Clone(list)
		slices.Sort(list)
		return list
	}
	yes, no := true, false

	t.Run("All", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		want := sorted(b.agentOrg.ID, b.agent.ID, b.org.ID, b.global.ID, b.disabled.ID, b.otherOrgs.ID)
		for _, params := range []*outbox.SubscriptionListParams{nil, {}} {
			subs, err := b.store.SubscriptionList(b.ctx, params)
			require.NoError(t, err)
			require.Equal(t, want, ids(subs), "every subscription, in id order")
		}
		subs, err := b.store.SubscriptionList(b.ctx, nil)
		require.NoError(t, err)
		require.Equal(t, b.agentOrg.Subscription, subs[slices.Index(ids(subs), b.agentOrg.ID)], "full rows")
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		tests := []struct {
			name   string
			params outbox.SubscriptionListParams
			want   []string
		}{
			{"Agent", outbox.SubscriptionListParams{AgentID: "agent-1"}, sorted(b.agentOrg.ID, b.agent.ID)},
			{"Organization", outbox.SubscriptionListParams{OrganizationID: "org-1"}, sorted(b.agentOrg.ID, b.org.ID)},
			{"AgentAndOrganization", outbox.SubscriptionListParams{AgentID: "agent-1", OrganizationID: "org-1"}, []string{b.agentOrg.ID}},
			{"AgentInOtherOrganization", outbox.SubscriptionListParams{AgentID: "agent-1", OrganizationID: "org-2"}, []string{}},
			{"Enabled", outbox.SubscriptionListParams{Enabled: &yes}, sorted(b.agentOrg.ID, b.agent.ID, b.org.ID, b.global.ID, b.otherOrgs.ID)},
			{"Disabled", outbox.SubscriptionListParams{Enabled: &no}, []string{b.disabled.ID}},
			{"DisabledOfAgent", outbox.SubscriptionListParams{AgentID: "agent-1", Enabled: &no}, []string{}},
			{"UnknownAgent", outbox.SubscriptionListParams{AgentID: "agent-404"}, []string{}},
		}
		for _, tt := range tests {
			subs, err := b.store.SubscriptionList(b.ctx, &tt.params)
			require.NoError(t, err, tt.name)
			require.Equal(t, tt.want, ids(subs), tt.name)
		}
	})

	t.Run("Pagination", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		all, err := b.store.SubscriptionList(b.ctx, nil)
		require.NoError(t, err)
		require.Len(t, all, 6)

		var (
			paged []string
			pages int
			after string
		)
		for {
			page, err := b.store.SubscriptionList(b.ctx, &outbox.SubscriptionListParams{After: after, Limit: 4})
			require.NoError(t, err)
			if len(page) == 0 {
				break
			}
			require.LessOrEqual(t, len(page), 4)
			pages++
			paged = append(paged, ids(page)...)
			after = page[len(page)-1].ID
		}
		require.Equal(t, 2, pages)
		require.Equal(t, ids(all), paged, "pages cover everything once, in order")

		page, err := b.store.SubscriptionList(b.ctx, &outbox.SubscriptionListParams{After: all[1].ID, Limit: 2})
		require.NoError(t, err)
		require.Equal(t, ids(all[2:4]), ids(page))

		// Filters and pages combine.
		page, err = b.store.SubscriptionList(b.ctx, &outbox.SubscriptionListParams{Enabled: &yes, Limit: 1})
		require.NoError(t, err)
		require.Len(t, page, 1)
		require.True(t, page[0].Enabled)
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()

		ctx := context.Background()
		store := outboxtest.Store(t)
		subs, err := store.SubscriptionList(ctx, nil)
		require.NoError(t, err)
		require.NotNil(t, subs)
		require.Empty(t, subs)
	})
}

func TestSubscriptionDelete(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	store := outboxtest.Store(t)
	doomed := outboxtest.Subscription(ctx, t, store, nil)
	kept := outboxtest.Subscription(ctx, t, store, nil)
	require.Equal(t, 2, countRows(ctx, t, store, "subscription_secrets"))

	require.NoError(t, store.SubscriptionDelete(ctx, doomed.ID))
	_, err := store.SubscriptionGet(ctx, doomed.ID)
	require.ErrorIs(t, err, outbox.ErrNotFound)
	require.Equal(t, 1, countRows(ctx, t, store, "subscriptions"))
	require.Equal(t, 1, countRows(ctx, t, store, "subscription_secrets"), "its secrets go with it")

	require.ErrorIs(t, store.SubscriptionDelete(ctx, doomed.ID), outbox.ErrNotFound, "a second delete")
	require.ErrorIs(t, store.SubscriptionDelete(ctx, "sub_00000000000000000000000000000000"), outbox.ErrNotFound)

	_, err = store.SubscriptionGet(ctx, kept.ID)
	require.NoError(t, err, "others are untouched")
	target, err := store.DeliveryTarget(ctx, "evt_none", kept.ID)
	require.NoError(t, err)
	require.Equal(t, []signing.Secret{kept.Secret}, target.Secrets)
}

func TestSubscriptionDisable(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	store := outboxtest.Store(t)
	sub := outboxtest.Subscription(ctx, t, store, nil)
	other := outboxtest.Subscription(ctx, t, store, nil)

	disabled, err := store.SubscriptionDisable(ctx, sub.ID, "receiver answered 410 Gone")
	require.NoError(t, err)
	require.True(t, disabled)

	got, err := store.SubscriptionGet(ctx, sub.ID)
	require.NoError(t, err)
	require.False(t, got.Enabled)
	require.Equal(t, "receiver answered 410 Gone", got.DisabledReason)
	require.NotNil(t, got.DisabledAt)
	require.False(t, got.UpdatedAt.Before(sub.UpdatedAt))
	require.True(t, got.DisabledAt.Equal(got.UpdatedAt))

	// Only the first call disables; the first reason stays.
	disabled, err = store.SubscriptionDisable(ctx, sub.ID, "another reason")
	require.NoError(t, err)
	require.False(t, disabled)
	again, err := store.SubscriptionGet(ctx, sub.ID)
	require.NoError(t, err)
	require.Equal(t, "receiver answered 410 Gone", again.DisabledReason)
	require.True(t, got.DisabledAt.Equal(*again.DisabledAt))

	disabled, err = store.SubscriptionDisable(ctx, "sub_00000000000000000000000000000000", "gone")
	require.NoError(t, err)
	require.False(t, disabled, "an unknown subscription is not disabled")

	otherGot, err := store.SubscriptionGet(ctx, other.ID)
	require.NoError(t, err)
	require.True(t, otherGot.Enabled)
	require.Empty(t, otherGot.DisabledReason)

	data, err := json.Marshal(got)
	require.NoError(t, err)
	require.Contains(t, string(data), `"enabled":false`)
	require.Contains(t, string(data), `"disabled_reason":"receiver answered 410 Gone"`)
}

func TestValidateEventTypePattern(t *testing.T) {
	t.Parallel()

	tests := []struct {
		pattern string
		valid   bool
	}{
		{"*", true},
		{"agent.step.completed", true},
		{"agent.step.*", true},
		{"agent.*", true},
		{"a_1.b_2", true},
		{"a." + strings.Repeat("b", 198), true},
		{"a." + strings.Repeat("b", 199), false},
		{"", false},
		{"**", false},
		{"*.*", false},
		{"agent", false},
		{"agent.", false},
		{"agent.step.", false},
		{".agent.step", false},
		{"agent..step", false},
		{"Agent.*", false},
		{"agent.*.completed", false},
		{"agent.step*", false},
		{"agent.step!", false},
		{"agent-1.step", false},
		{" agent.step", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.pattern), func(t *testing.T) {
			t.Parallel()

			err := outbox.ValidateEventTypePattern(tt.pattern)
			if tt.valid {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), fmt.Sprintf("%q is not an event type", tt.pattern))
		})
	}
}

func TestValidateHeaders(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		headers map[string]string
		wantErr string
	}{
		{"Nil", nil, ""},
		{"Custom", map[string]string{"Authorization": "Bearer x", "X-Api-Key": "k", "x-lower": "v"}, ""},
		{"TabInValue", map[string]string{"X-A": "a\tb"}, ""},
		{"EmptyValue", map[string]string{"X-A": ""}, ""},
		{"TokenPunctuation", map[string]string{"X-A!#$%&'*+.^_`|~": "v"}, ""},
		{"WebhookID", map[string]string{"Webhook-Id": "x"}, "set by outboxd"},
		{"WebhookTimestamp", map[string]string{"webhook-timestamp": "1"}, "set by outboxd"},
		{"WebhookSignature", map[string]string{"WEBHOOK-SIGNATURE": "v1,x"}, "set by outboxd"},
		{"ContentType", map[string]string{"Content-Type": "text/plain"}, "set by outboxd"},
		{"ContentLength", map[string]string{"Content-Length": "1"}, "set by outboxd"},
		{"UserAgent", map[string]string{"User-Agent": "x"}, "set by outboxd"},
		{"TransferEncoding", map[string]string{"Transfer-Encoding": "chunked"}, "set by outboxd"},
		{"ProxyAuthorization", map[string]string{"Proxy-Authorization": "x"}, "set by outboxd"},
		{"CR", map[string]string{"X-A": "a\rb"}, "invalid value"},
		{"LF", map[string]string{"X-A": "a\nb"}, "invalid value"},
		{"DEL", map[string]string{"X-A": "a\x7fb"}, "invalid value"},
		{"NameWithSpace", map[string]string{"X A": "v"}, "not a valid header name"},
		{"NameWithColon", map[string]string{"X:A": "v"}, "not a valid header name"},
		{"NameNonASCII", map[string]string{"X-Ä": "v"}, "not a valid header name"},
		{"EmptyName", map[string]string{"": "v"}, "not a valid header name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			err := outbox.ValidateHeaders(tt.headers)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestParseRetrySchedule(t *testing.T) {
	t.Parallel()

	tests := []struct {
		input   string
		want    outbox.RetrySchedule
		wantErr string
	}{
		{"5s", outbox.RetrySchedule{5 * time.Second}, ""},
		{"1s,5s,5m", outbox.RetrySchedule{time.Second, 5 * time.Second, 5 * time.Minute}, ""},
		{" 1ms , 2h ", outbox.RetrySchedule{time.Millisecond, 2 * time.Hour}, ""},
		{"168h", outbox.RetrySchedule{7 * 24 * time.Hour}, ""},
		{"", nil, `"" is not a duration`},
		{"5", nil, `"5" is not a duration`},
		{"5s,,5s", nil, `"" is not a duration`},
		{"five", nil, `"five" is not a duration`},
		{"0s", nil, "delay 0s is out of range"},
		{"-1s", nil, "delay -1s is out of range"},
		{"1us", nil, "out of range"},
		{"169h", nil, "out of range"},
		{strings.Repeat("1s,", 50) + "1s", nil, "at most 50 retries, not 51"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.input), func(t *testing.T) {
			t.Parallel()

			got, err := outbox.ParseRetrySchedule(tt.input)
			if tt.wantErr != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			again, err := outbox.ParseRetrySchedule(got.String())
			require.NoError(t, err)
			require.Equal(t, got, again, "String is what ParseRetrySchedule reads")
		})
	}
}

func TestRetryScheduleJSON(t *testing.T) {
	t.Parallel()

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()

		schedule := outbox.RetrySchedule{5 * time.Second, 90 * time.Second, 2 * time.Hour}
		data, err := json.Marshal(schedule)
		require.NoError(t, err)
		require.JSONEq(t, `["5s","1m30s","2h0m0s"]`, string(data))
		require.Equal(t, "5s,1m30s,2h0m0s", schedule.String())

		var got outbox.RetrySchedule
		require.NoError(t, json.Unmarshal(data, &got))
		require.Equal(t, schedule, got)
	})

	t.Run("OmittedWhenNil", func(t *testing.T) {
		t.Parallel()

		data, err := json.Marshal(&outbox.Subscription{ID: "sub_x"})
		require.NoError(t, err)
		require.NotContains(t, string(data), "retry_schedule")

		data, err = json.Marshal(&outbox.Subscription{ID: "sub_x", RetrySchedule: outbox.RetrySchedule{time.Second}})
		require.NoError(t, err)
		require.Contains(t, string(data), `"retry_schedule":["1s"]`)
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()

		tests := []struct {
			input   string
			wantErr string
		}{
			{`"5s"`, `retry_schedule: a list of durations like ["5s","5m"]`},
			{`[5]`, `retry_schedule: a list of durations like ["5s","5m"]`},
			{`{"a":"5s"}`, `retry_schedule: a list of durations like ["5s","5m"]`},
			{`["5s", "5 seconds"]`, `retry_schedule[1]: "5 seconds" is not a duration`},
		}
		for _, tt := range tests {
			var got outbox.RetrySchedule
			err := json.Unmarshal([]byte(tt.input), &got)
			require.Error(t, err, tt.input)
			require.Contains(t, err.Error(), tt.wantErr, tt.input)
		}
	})
}

func TestSubscriptionErrorsAreTyped(t *testing.T) {
	t.Parallel()

	// A ValidationError is distinguishable from ErrNotFound and from ErrNoEncryptionKey.
	ctx := context.Background()
	store := outboxtest.Store(t)
	_, err := store.SubscriptionCreate(ctx, &outbox.SubscriptionCreateParams{URL: "file:///x"})
	var verr *outbox.ValidationError
	require.True(t, errors.As(err, &verr))
	require.NotErrorIs(t, err, outbox.ErrNotFound)
	require.NotErrorIs(t, err, outbox.ErrNoEncryptionKey)
	require.True(t, strings.HasPrefix(err.Error(), "url: "), err.Error())
}
