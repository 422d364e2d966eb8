package secretbox_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/secretbox"
)

func newKey(t *testing.T) *secretbox.Key {
	t.Helper()
	raw := make([]byte, secretbox.KeySize)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	key, err := secretbox.ParseKey(base64.StdEncoding.EncodeToString(raw))
	require.NoError(t, err)
	return key
}

func TestSealOpen(t *testing.T) {
	t.Parallel()

	ring := secretbox.NewKeyring(newKey(t))
	plaintext := []byte("the signing secret")
	keyID, sealed, err := ring.Seal(plaintext, []byte("sub_1"))
	require.NoError(t, err)
	require.Equal(t, ring.CurrentKeyID(), keyID)
	require.False(t, bytes.Contains(sealed, plaintext))

	opened, err := ring.Open(keyID, sealed, []byte("sub_1"))
	require.NoError(t, err)
	require.Equal(t, plaintext, opened)

	// Bound to its row: the same ciphertext does not open for another subscription.
	_, err = ring.Open(keyID, sealed, []byte("sub_2"))
	require.EqualError(t, err, "open secret: authentication failed (wrong key or tampered row)")

	sealed[len(sealed)-1] ^= 1
	_, err = ring.Open(keyID, sealed, []byte("sub_1"))
	require.Error(t, err)
}

func TestKeyringRotation(t *testing.T) {
	t.Parallel()

	oldKey, newKey := newKey(t), newKey(t)
	require.NotEqual(t, oldKey.ID(), newKey.ID())

	keyID, sealed, err := secretbox.NewKeyring(oldKey).Seal([]byte("s"), nil)
	require.NoError(t, err)

	// After rotation the new key seals and the old one still opens.
	rotated := secretbox.NewKeyring(newKey, oldKey)
	require.Equal(t, newKey.ID(), rotated.CurrentKeyID())
	opened, err := rotated.Open(keyID, sealed, nil)
	require.NoError(t, err)
	require.Equal(t, []byte("s"), opened)

	_, err = secretbox.NewKeyring(newKey).Open(keyID, sealed, nil)
	require.EqualError(t, err, "secret was encrypted with key "+oldKey.ID()+", which is not configured")
}

func TestParseKeyErrorsSayHowToMakeOne(t *testing.T) {
	t.Parallel()

	_, err := secretbox.ParseKey("not base64!")
	require.ErrorContains(t, err, "openssl rand -base64 32")
	_, err = secretbox.ParseKey(base64.StdEncoding.EncodeToString([]byte("short")))
	require.ErrorContains(t, err, "encryption key must be 32 bytes, not 5")

	var ring *secretbox.Keyring
	_, _, err = ring.Seal([]byte("x"), nil)
	require.ErrorIs(t, err, secretbox.ErrNoKey)
	require.ErrorContains(t, err, "OUTBOXD_ENCRYPTION_KEY")
}
