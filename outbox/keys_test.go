package outbox_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/outboxtest"
	"github.com/outboxd/outboxd/outbox/secretbox"
	"github.com/outboxd/outboxd/outbox/signing"
)

type keysBundle struct {
	ctx    context.Context
	schema string
	oldKey *secretbox.Key
	newKey *secretbox.Key
}

func setupKeys(t *testing.T) *keysBundle {
	t.Helper()
	return &keysBundle{ctx: context.Background(), schema: outboxtest.Schema(t), oldKey: outboxtest.Key(t), newKey: outboxtest.Key(t)}
}

// store returns a store whose keyring has current as its current key and older
// keys still readable.
func (b *keysBundle) store(t *testing.T, current *secretbox.Key, older ...*secretbox.Key) *outbox.Store {
	t.Helper()
	store, err := outbox.NewStore(outboxtest.Pool(t), &outbox.StoreConfig{
		Schema: b.schema, Keyring: secretbox.NewKeyring(current, older...), Guard: outboxtest.LoopbackGuard(),
	})
	require.NoError(t, err)
	return store
}

func TestSecretsResealMovesEverySecretToTheCurrentKey(t *testing.T) {
	t.Parallel()
	b := setupKeys(t)

	oldStore := b.store(t, b.oldKey)
	var secrets []string
	var ids []string
	for range 3 {
		sub := outboxtest.Subscription(b.ctx, t, oldStore, nil)
		secrets = append(secrets, sub.Secret.String())
		ids = append(ids, sub.ID)
	}
	rotated, err := oldStore.SubscriptionSecretRotate(b.ctx, ids[0], 0)
	require.NoError(t, err)
	secrets = append(secrets, rotated.Secret.String())

	// The new key alone cannot read the old secrets yet.
	_, err = b.store(t, b.newKey).DeliveryTarget(b.ctx, "", ids[1])
	require.ErrorContains(t, err, "not configured")

	var progress []int64
	result, err := b.store(t, b.newKey, b.oldKey).SecretsReseal(b.ctx, 2, func(n int64) { progress = append(progress, n) })
	require.NoError(t, err)
	require.EqualValues(t, 4, result.Resealed)
	require.Equal(t, []int64{2, 4}, progress)
	require.Equal(t, map[string]int64{b.newKey.ID(): 4}, result.Remaining)

	// Now the new key alone reads every secret, and they are the same secrets.
	newStore := b.store(t, b.newKey)
	var got []string
	for _, id := range ids {
		target, err := newStore.DeliveryTarget(b.ctx, "", id)
		require.NoError(t, err)
		for _, s := range target.Secrets {
			got = append(got, s.String())
		}
	}
	require.ElementsMatch(t, secrets, got)

	// A second run has nothing to do.
	again, err := b.store(t, b.newKey, b.oldKey).SecretsReseal(b.ctx, 0, nil)
	require.NoError(t, err)
	require.Zero(t, again.Resealed)
}

func TestSecretsResealWithoutTheOldKeyIsAClearError(t *testing.T) {
	t.Parallel()
	b := setupKeys(t)
	sub := outboxtest.Subscription(b.ctx, t, b.store(t, b.oldKey), nil)

	_, err := b.store(t, b.newKey).SecretsReseal(b.ctx, 0, nil)
	require.ErrorContains(t, err, "OUTBOXD_ENCRYPTION_KEYS_OLD")
	require.ErrorContains(t, err, b.oldKey.ID())

	// Nothing changed: the old key still reads it.
	target, err := b.store(t, b.oldKey).DeliveryTarget(b.ctx, "", sub.ID)
	require.NoError(t, err)
	require.Equal(t, sub.Secret, target.Secrets[0])
}

// A subscription's secret cannot be found in a dump of the database: not as
// whsec_…, not as its base64 body, not as raw bytes.
func TestSecretsAreNotInADatabaseDump(t *testing.T) {
	t.Parallel()
	pgDump, err := exec.LookPath("pg_dump")
	if err != nil && os.Getenv("CI") != "true" {
		t.Skip("pg_dump is not installed")
	}
	require.NoError(t, err, "CI must have pg_dump")

	b := setupKeys(t)
	store := b.store(t, b.oldKey)
	sub := outboxtest.Subscription(b.ctx, t, store, nil)
	rotated, err := store.SubscriptionSecretRotate(b.ctx, sub.ID, 0)
	require.NoError(t, err)

	out, err := exec.CommandContext(b.ctx, pgDump, "--schema="+b.schema, "--data-only", "--inserts", outboxtest.DatabaseURL()).Output()
	require.NoError(t, err)
	dump := string(out)
	require.Contains(t, dump, sub.ID, "the dump has the subscription's rows")
	for _, secret := range [][]byte{sub.Secret, rotated.Secret} {
		for _, form := range []string{
			"whsec_" + base64.StdEncoding.EncodeToString(secret),
			base64.StdEncoding.EncodeToString(secret),
			base64.RawStdEncoding.EncodeToString(secret),
			hex.EncodeToString(secret),
			string(secret),
		} {
			require.False(t, strings.Contains(dump, form), "the dump contains a secret")
		}
	}
}

// During a rotation's grace both secrets sign; afterwards only the new one.
func TestSecretRotationGrace(t *testing.T) {
	t.Parallel()
	b := setupKeys(t)
	store := b.store(t, b.oldKey)
	sub := outboxtest.Subscription(b.ctx, t, store, nil)

	rotated, err := store.SubscriptionSecretRotate(b.ctx, sub.ID, 300*time.Millisecond)
	require.NoError(t, err)
	target, err := store.DeliveryTarget(b.ctx, "", sub.ID)
	require.NoError(t, err)
	require.Equal(t, []signing.Secret{sub.Secret, rotated.Secret}, target.Secrets, "both sign during the grace")

	require.Eventually(t, func() bool {
		target, err := store.DeliveryTarget(b.ctx, "", sub.ID)
		require.NoError(t, err)
		return len(target.Secrets) == 1
	}, 10*time.Second, 20*time.Millisecond)
	target, err = store.DeliveryTarget(b.ctx, "", sub.ID)
	require.NoError(t, err)
	require.Equal(t, []signing.Secret{rotated.Secret}, target.Secrets, "only the new one after it")

	for _, grace := range []time.Duration{-time.Second, 8 * 24 * time.Hour} {
		_, err := store.SubscriptionSecretRotate(b.ctx, sub.ID, grace)
		var validation *outbox.ValidationError
		require.ErrorAs(t, err, &validation)
		require.Equal(t, "grace", validation.Field)
	}
	_, err = store.SubscriptionSecretRotate(b.ctx, "sub_nope", 0)
	require.ErrorIs(t, err, outbox.ErrNotFound)
}
