// Command sub attaches to the ring NAME, once it exists, and checks COUNT
// readings.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/tachyon-io/tachyon/runtime/ring"

	"example.com/app/telemetry"
)

func main() {
	name := flag.String("ring", "", "ring name")
	count := flag.Int("count", 100000, "readings to expect")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var sub *ring.Subscriber[telemetry.Reading]
	for {
		var err error
		if sub, err = ring.Attach[telemetry.Reading](*name, ring.SubscribeOptions{}); err == nil {
			break
		}
		if !errors.Is(err, ring.ErrNotFound) || ctx.Err() != nil {
			log.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer sub.Close()
	var m telemetry.Reading
	for i := range *count {
		if err := sub.Recv(ctx, &m); err != nil {
			log.Fatalf("reading %d: %v", i, err)
		}
		want := fmt.Sprintf("s%d", i%7)
		if m.Seq != uint64(i) || m.Value != float64(i)/4 || m.Unit != telemetry.UnitCelsius || m.Ok != (i%2 == 0) || m.SensorString() != want {
			log.Fatalf("reading %d: got %+v (sensor %q)", i, m, m.SensorString())
		}
	}
	fmt.Println("received", *count, "readings in order")
}
