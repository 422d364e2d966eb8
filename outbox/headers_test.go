package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
	"github.com/outboxd/outboxd/outbox/secretbox"
)

// credential is a header value that must never be readable from the database,
// a read or a log.
const credential = "Bearer sk_live_h10_must_not_leak"

// rowText is everything the database holds for a subscription, as a pg_dump of
// the tables would show it: the row and its secrets' rows, as text.
func rowText(ctx context.Context, t *testing.T, store *outbox.Store, id string) string {
	t.Helper()
	var text string
	err := outboxtest.Pool(t).QueryRow(ctx, fmt.Sprintf(`SELECT s::text || coalesce((SELECT string_agg(ss::text, ' ') FROM %[1]s.subscription_secrets AS ss
		WHERE ss.subscription_id = s.id), '') FROM %[1]s.subscriptions AS s WHERE s.id = $1`, store.Schema()), id).Scan(&text)
	require.NoError(t, err)
	return text
}

func TestSubscriptionHeaderValuesAtRest(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx   context.Context
		store *outbox.Store
		key   *secretbox.Key
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		key := outboxtest.Key(t)
		store, err := outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{
			Schema: outboxtest.Schema(t), Keyring: secretbox.NewKeyring(key), Guard: outboxtest.LoopbackGuard(),
		})
		require.NoError(t, err)
		return &testBundle{ctx: context.Background(), store: store, key: key}
	}
	// storeWith opens the bundle's schema with another keyring (nil: none).
	storeWith := func(t *testing.T, b *testBundle, keyring *secretbox.Keyring) *outbox.Store {
		t.Helper()
		store, err := outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{Schema: b.store.Schema(), Keyring: keyring, Guard: outboxtest.LoopbackGuard()})
		require.NoError(t, err)
		return store
	}
	headersOf := func(t *testing.T, store *outbox.Store, id string) map[string]string {
		t.Helper()
		target, err := store.DeliveryTarget(context.Background(), "evt_none", id)
		require.NoError(t, err)
		return target.Headers
	}
	// makePlaintext turns a subscription's headers into what a version before
	// migration 7 wrote, as the migration leaves it.
	makePlaintext := func(t *testing.T, b *testBundle, id string, headers map[string]string) {
		t.Helper()
		data, err := json.Marshal(headers)
		require.NoError(t, err)
		_, err = outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf(`UPDATE %s.subscriptions SET headers = $2, headers_key_id = NULL,
			headers_ciphertext = NULL, header_names = ARRAY(SELECT k FROM jsonb_object_keys($2::jsonb) AS k ORDER BY k COLLATE "C") WHERE id = $1`, b.store.Schema()), id, data)
		require.NoError(t, err)
	}
	const tenant = "tenant-h10"

	t.Run("ValuesAreNotStoredInClear", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{
			Headers: map[string]string{"Authorization": credential, "X-Tenant": "tenant-h10"},
		})
		text := rowText(b.ctx, t, b.store, sub.ID)
		require.Contains(t, text, sub.ID)
		require.NotContains(t, text, "sk_live_h10_must_not_leak")
		require.NotContains(t, text, "tenant-h10")

		got, err := b.store.SubscriptionGet(b.ctx, sub.ID)
		require.NoError(t, err)
		data, err := json.Marshal(got)
		require.NoError(t, err)
		require.NotContains(t, string(data), "sk_live_h10_must_not_leak", "a read shows names, never values")
	})

	t.Run("SealedToTheirSubscription", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		a := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{Headers: map[string]string{"Authorization": credential}})
		other := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{Headers: map[string]string{"X-Tenant": tenant}})
		require.Equal(t, map[string]string{"Authorization": credential}, headersOf(t, b.store, a.ID))

		// Another subscription's ciphertext does not open here, nor does a
		// header ciphertext open as a signing secret.
		_, err := outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf(`UPDATE %[1]s.subscriptions AS s SET headers_ciphertext = o.headers_ciphertext
			FROM %[1]s.subscriptions AS o WHERE s.id = $1 AND o.id = $2`, b.store.Schema()), other.ID, a.ID)
		require.NoError(t, err)
		_, err = b.store.DeliveryTarget(b.ctx, "evt_none", other.ID)
		require.ErrorContains(t, err, "authentication failed")
		_, err = outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf(`UPDATE %[1]s.subscription_secrets AS ss SET ciphertext = s.headers_ciphertext
			FROM %[1]s.subscriptions AS s WHERE ss.subscription_id = $1 AND s.id = $1`, b.store.Schema()), a.ID)
		require.NoError(t, err)
		_, err = b.store.DeliveryTarget(b.ctx, "evt_none", a.ID)
		require.ErrorContains(t, err, "authentication failed")
		require.NotContains(t, err.Error(), "sk_live_h10_must_not_leak")
	})

	t.Run("UpdateReplacesLeavesOrRemoves", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{Headers: map[string]string{"Authorization": credential}})
		description := "no header change"
		updated, err := b.store.SubscriptionUpdate(b.ctx, sub.ID, &outbox.SubscriptionUpdateParams{Description: &description})
		require.NoError(t, err)
		require.Equal(t, []string{"Authorization"}, updated.HeaderNames)
		require.Equal(t, map[string]string{"Authorization": credential}, headersOf(t, b.store, sub.ID), "nil leaves them")

		updated, err = b.store.SubscriptionUpdate(b.ctx, sub.ID, &outbox.SubscriptionUpdateParams{Headers: map[string]string{"X-Tenant": tenant, "X-Api-Key": "k2"}})
		require.NoError(t, err)
		require.Equal(t, []string{"X-Api-Key", "X-Tenant"}, updated.HeaderNames)
		require.Equal(t, map[string]string{"X-Tenant": tenant, "X-Api-Key": "k2"}, headersOf(t, b.store, sub.ID), "new ones replace them all")
		require.NotContains(t, rowText(b.ctx, t, b.store, sub.ID), tenant)

		_, err = b.store.SubscriptionUpdate(b.ctx, sub.ID, &outbox.SubscriptionUpdateParams{Headers: map[string]string{"Webhook-Signature": "forged"}})
		requireValidationError(t, err, "headers", "is set by outboxd")
		require.Equal(t, map[string]string{"X-Tenant": tenant, "X-Api-Key": "k2"}, headersOf(t, b.store, sub.ID), "a refused update changes nothing")

		updated, err = b.store.SubscriptionUpdate(b.ctx, sub.ID, &outbox.SubscriptionUpdateParams{Headers: map[string]string{}})
		require.NoError(t, err)
		require.Equal(t, []string{}, updated.HeaderNames)
		require.Nil(t, headersOf(t, b.store, sub.ID), "empty removes them")
		var sealed bool
		require.NoError(t, outboxtest.Pool(t).QueryRow(b.ctx, fmt.Sprintf("SELECT headers_ciphertext IS NOT NULL FROM %s.subscriptions WHERE id = $1", b.store.Schema()), sub.ID).Scan(&sealed))
		require.False(t, sealed)
	})

	t.Run("WithoutTheKey", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{Headers: map[string]string{"Authorization": credential}})
		keyless := storeWith(t, b, nil)

		// Reads show only names, so they need no key; neither does a change that
		// leaves the headers alone, or removes them.
		got, err := keyless.SubscriptionGet(b.ctx, sub.ID)
		require.NoError(t, err)
		require.Equal(t, []string{"Authorization"}, got.HeaderNames)
		description := "edited without the key"
		_, err = keyless.SubscriptionUpdate(b.ctx, sub.ID, &outbox.SubscriptionUpdateParams{Description: &description})
		require.NoError(t, err)
		require.Equal(t, map[string]string{"Authorization": credential}, headersOf(t, b.store, sub.ID))

		_, err = keyless.SubscriptionUpdate(b.ctx, sub.ID, &outbox.SubscriptionUpdateParams{Headers: map[string]string{"Authorization": "Bearer new"}})
		require.ErrorIs(t, err, outbox.ErrNoEncryptionKey)
		require.Equal(t, map[string]string{"Authorization": credential}, headersOf(t, b.store, sub.ID))
		_, err = keyless.DeliveryTarget(b.ctx, "evt_none", sub.ID)
		require.ErrorIs(t, err, outbox.ErrNoEncryptionKey)
		_, err = keyless.HeadersSealPlaintext(b.ctx)
		require.ErrorIs(t, err, outbox.ErrNoEncryptionKey)

		_, err = keyless.SubscriptionUpdate(b.ctx, sub.ID, &outbox.SubscriptionUpdateParams{Headers: map[string]string{}})
		require.NoError(t, err)
		got, err = keyless.SubscriptionGet(b.ctx, sub.ID)
		require.NoError(t, err)
		require.Empty(t, got.HeaderNames)
	})

	t.Run("PlaintextFromBeforeMigration7", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		legacy := outboxtest.Subscription(b.ctx, t, b.store, nil)
		makePlaintext(t, b, legacy.ID, map[string]string{"Authorization": credential, "X-Tenant": tenant})
		sealed := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{Headers: map[string]string{"X-Api-Key": "k1"}})
		require.Contains(t, rowText(b.ctx, t, b.store, legacy.ID), "sk_live_h10_must_not_leak")

		// Still delivered as they are, and shown by name only.
		require.Equal(t, map[string]string{"Authorization": credential, "X-Tenant": tenant}, headersOf(t, b.store, legacy.ID))
		got, err := b.store.SubscriptionGet(b.ctx, legacy.ID)
		require.NoError(t, err)
		require.Equal(t, []string{"Authorization", "X-Tenant"}, got.HeaderNames)
		counts, err := b.store.HeadersCount(b.ctx)
		require.NoError(t, err)
		require.Equal(t, &outbox.HeadersCounts{Sealed: 1, Plaintext: 1}, counts)

		n, err := b.store.HeadersSealPlaintext(b.ctx)
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		require.NotContains(t, rowText(b.ctx, t, b.store, legacy.ID), "sk_live_h10_must_not_leak")
		require.NotContains(t, rowText(b.ctx, t, b.store, legacy.ID), tenant)
		require.Equal(t, map[string]string{"Authorization": credential, "X-Tenant": tenant}, headersOf(t, b.store, legacy.ID))
		require.Equal(t, map[string]string{"X-Api-Key": "k1"}, headersOf(t, b.store, sealed.ID), "sealed ones are left alone")
		counts, err = b.store.HeadersCount(b.ctx)
		require.NoError(t, err)
		require.Equal(t, &outbox.HeadersCounts{Sealed: 2}, counts)
		n, err = b.store.HeadersSealPlaintext(b.ctx)
		require.NoError(t, err)
		require.Zero(t, n, "a second run has nothing to do")
	})

	// During an upgrade a daemon of an older version may still write headers in
	// plaintext, over sealed ones: its write is the newer, so it wins.
	t.Run("OlderDaemonsWriteWins", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{Headers: map[string]string{"Authorization": credential}})
		_, err := outboxtest.Pool(t).Exec(b.ctx, fmt.Sprintf(`UPDATE %s.subscriptions SET headers = '{"X-Api-Key": "from-v6"}' WHERE id = $1`, b.store.Schema()), sub.ID)
		require.NoError(t, err)
		got, err := b.store.SubscriptionGet(b.ctx, sub.ID)
		require.NoError(t, err)
		require.Equal(t, []string{"X-Api-Key"}, got.HeaderNames)
		require.Equal(t, map[string]string{"X-Api-Key": "from-v6"}, headersOf(t, b.store, sub.ID))

		n, err := b.store.HeadersSealPlaintext(b.ctx)
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		require.NotContains(t, rowText(b.ctx, t, b.store, sub.ID), "from-v6")
		require.Equal(t, map[string]string{"X-Api-Key": "from-v6"}, headersOf(t, b.store, sub.ID))
	})

	t.Run("KeyRotationResealsThem", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{Headers: map[string]string{"Authorization": credential}})
		legacy := outboxtest.Subscription(b.ctx, t, b.store, nil)
		makePlaintext(t, b, legacy.ID, map[string]string{"X-Tenant": tenant})
		outboxtest.Subscription(b.ctx, t, b.store, nil) // no headers: nothing to seal
		before := rowText(b.ctx, t, b.store, sub.ID)

		newKey := outboxtest.Key(t)
		var progress []int64
		result, err := storeWith(t, b, secretbox.NewKeyring(newKey, b.key)).SecretsReseal(b.ctx, 1, func(n int64) { progress = append(progress, n) })
		require.NoError(t, err)
		require.EqualValues(t, 3, result.Resealed, "three signing secrets")
		require.EqualValues(t, 2, result.HeadersResealed, "one sealed, one in plaintext")
		require.Equal(t, newKey.ID(), result.KeyID)
		require.Equal(t, map[string]int64{newKey.ID(): 2}, result.HeadersRemaining)
		require.Equal(t, []int64{1, 2, 3, 4, 5}, progress)
		require.NotEqual(t, before, rowText(b.ctx, t, b.store, sub.ID))
		require.NotContains(t, rowText(b.ctx, t, b.store, legacy.ID), tenant)

		// Only the new key opens them now.
		onlyNew := storeWith(t, b, secretbox.NewKeyring(newKey))
		require.Equal(t, map[string]string{"Authorization": credential}, headersOf(t, onlyNew, sub.ID))
		require.Equal(t, map[string]string{"X-Tenant": tenant}, headersOf(t, onlyNew, legacy.ID))
		_, err = b.store.DeliveryTarget(b.ctx, "evt_none", sub.ID)
		require.ErrorContains(t, err, "not configured")

		// Without the old key a rotation stops and says which key it needs.
		_, err = storeWith(t, b, secretbox.NewKeyring(outboxtest.Key(t))).SecretsReseal(b.ctx, 0, nil)
		require.ErrorContains(t, err, "OUTBOXD_ENCRYPTION_KEYS_OLD")
	})

	t.Run("UnsealForDowngrade", func(t *testing.T) {
		t.Parallel()

		b := setup(t)
		sub := outboxtest.Subscription(b.ctx, t, b.store, &outboxtest.SubscriptionOpts{Headers: map[string]string{"Authorization": credential}})
		_, err := storeWith(t, b, nil).HeadersUnsealForDowngrade(b.ctx)
		require.ErrorContains(t, err, "OUTBOXD_ENCRYPTION_KEY")

		n, err := b.store.HeadersUnsealForDowngrade(b.ctx)
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		require.Contains(t, rowText(b.ctx, t, b.store, sub.ID), "sk_live_h10_must_not_leak", "in plaintext, as version 6 keeps them")
		require.Equal(t, map[string]string{"Authorization": credential}, headersOf(t, b.store, sub.ID))
		counts, err := b.store.HeadersCount(b.ctx)
		require.NoError(t, err)
		require.Equal(t, &outbox.HeadersCounts{Plaintext: 1}, counts)
	})
}
