package ring

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzAttach writes arbitrary bytes as a segment and attaches to it and
// inspects it: the result is an error or a working subscriber, never a
// panic, a fault or an out-of-range access.
func FuzzAttach(f *testing.F) {
	name := ringName(f)
	pub, err := Create[Tick](name, Options{Capacity: 4, MaxSubscribers: 2})
	require.NoError(f, err)
	publishTicks(f, pub, 3, true)
	valid, err := os.ReadFile(ShmDir + "/" + name)
	require.NoError(f, err)
	require.NoError(f, pub.Close())
	f.Add(valid)
	f.Add(valid[:HeaderSize])
	f.Add(valid[:len(valid)-8])
	f.Add([]byte{})
	f.Add(make([]byte, 4096))
	for _, off := range []int{offVersion, offMsgSize, offCapacity, offMaxSubs, offSlotsOff, offSegSize, offTail, offProdState} {
		v := append([]byte(nil), valid...)
		v[off] ^= 0x41
		f.Add(v)
	}
	big := append([]byte(nil), valid...)
	putLE64(big[offTail:], 1<<62)
	f.Add(big)
	f.Fuzz(func(t *testing.T, data []byte) {
		name := ringName(t)
		require.NoError(t, os.WriteFile(ShmDir+"/"+name, data, 0o600))
		if st, err := Inspect(name); err == nil {
			require.LessOrEqual(t, st.SegmentSize, uint64(len(data)))
			require.LessOrEqual(t, st.Fill, st.Capacity)
		}
		sub, err := Attach[Tick](name, SubscribeOptions{ReadyTimeout: time.Millisecond})
		if err != nil {
			return
		}
		defer sub.Close()
		var m Tick
		for i := 0; i < 8; i++ {
			_ = sub.TryRecv(&m)
			if b, err := sub.TryBorrow(); err == nil {
				_ = b.Seq
				_ = sub.Release()
			}
		}
	})
}
