// Command pub creates the ring NAME, waits for a subscriber, and publishes
// COUNT readings.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/tachyon-io/tachyon/runtime/ring"

	"example.com/app/telemetry"
)

func main() {
	name := flag.String("ring", "", "ring name")
	count := flag.Int("count", 100000, "readings to publish")
	flag.Parse()
	pub, err := ring.Create[telemetry.Reading](*name, ring.Options{Capacity: 1024, Batch: 32})
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pub.WaitSubscribers(ctx, 1); err != nil {
		log.Fatal(err)
	}
	for i := range *count {
		m, err := pub.Claim()
		if err != nil {
			log.Fatal(err)
		}
		*m = telemetry.Reading{Seq: uint64(i), Value: float64(i) / 4, Unit: telemetry.UnitCelsius, Ok: i%2 == 0}
		m.SetSensor(fmt.Sprintf("s%d", i%7))
		if err := pub.Commit(); err != nil {
			log.Fatal(err)
		}
	}
	pub.Flush()
	fmt.Println("published", *count)
}
