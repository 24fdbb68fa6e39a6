package io.tachyon.bench;

import io.aeron.Aeron;
import io.aeron.ExclusivePublication;
import io.aeron.Image;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import io.aeron.logbuffer.FragmentHandler;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.agrona.BitUtil;
import org.agrona.BufferUtil;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * The Aeron peer of {@code make bench-peers}: Aeron IPC between two processes, driven like every
 * system there (bench/peers/README.md).
 *
 * <pre>
 * AeronPeer ping --name NAME --count N [--warmup W] [--pin CPU] [--timeout-s S]
 * AeronPeer echo --name NAME [--pin CPU] [--timeout-s S]
 * AeronPeer pub  --name NAME --count N [--pin CPU] [--timeout-s S]
 * AeronPeer sub  --name NAME --count N [--pin CPU] [--timeout-s S]
 * </pre>
 *
 * <p>{@code ping}/{@code echo} follow the samples' {@code Ping} and {@code Pong}: exclusive
 * publications, one 64-byte message offered at a time, the echo offering the received bytes back
 * (a copy into its log) and both sides busy-polling their image with a fragment limit of 10. The
 * ping embeds the media driver (shared threading mode: one conductor thread, which IPC needs only
 * to advance publication limits): it is the side that finishes last, so the echo's client never
 * sees the driver go away (an Aeron client exits its process when its driver does). Unlike the samples the ping writes a sequence number, not a
 * timestamp, and times each round trip itself with {@link System#nanoTime()}
 * (CLOCK_MONOTONIC), as every system here does.
 *
 * <p>{@code pub}/{@code sub} stream 64-byte messages one way, as the samples' {@code
 * StreamingPublisher} and {@code RateSubscriber}, the publisher embedding the driver (it waits
 * for the subscriber to leave) and the subscriber checking every sequence number.
 *
 * <p>Only the thread that sends and receives is pinned (through {@code taskset} on its thread id),
 * as the Tachyon peers pin theirs; the JVM's and the driver's threads float.
 */
public final class AeronPeer {
  private static final int MSG = 64;
  /** The samples' fragment count limit per poll, and their property to change it. */
  private static final int FRAGMENT_LIMIT = Integer.getInteger("aeron.sample.frameCountLimit", 10);
  private static final int PING_STREAM = 1002;
  private static final int PONG_STREAM = 1003;
  private static final int STREAM = 1001;
  private static final long STOP = -1L;

  private final String role;
  private String name = "";
  private long count;
  private long warmup;
  private int pin = -1;
  private long timeoutNs = 30_000_000_000L;

  private AeronPeer(final String[] args) {
    if (args.length == 0 || !Arrays.asList("ping", "echo", "pub", "sub").contains(args[0])) {
      usage("first argument must be ping, echo, pub or sub");
    }
    role = args[0];
    for (int i = 1; i < args.length; i += 2) {
      if (i + 1 >= args.length) {
        usage("flag " + args[i] + " needs a value");
      }
      final String v = args[i + 1];
      switch (args[i]) {
        case "--name" -> name = v;
        case "--count" -> count = number(args[i], v);
        case "--warmup" -> warmup = number(args[i], v);
        case "--pin" -> pin = (int) number(args[i], v);
        case "--timeout-s" -> timeoutNs = number(args[i], v) * 1_000_000_000L;
        default -> usage("unknown flag " + args[i]);
      }
    }
    if (name.isEmpty()) {
      usage("--name is required");
    }
    if (!role.equals("echo") && count == 0) {
      usage("--count is required");
    }
  }

  private static void usage(final String why) {
    System.err.println(
        "AeronPeer: "
            + why
            + "\nusage: AeronPeer ping|echo|pub|sub --name NAME [--count N] [--warmup W] [--pin CPU]"
            + " [--timeout-s S]");
    System.exit(2);
  }

  private static long number(final String flag, final String v) {
    try {
      final long x = Long.parseLong(v);
      if (x >= 0) {
        return x;
      }
    } catch (final NumberFormatException e) {
      // reported below
    }
    usage("bad value for " + flag + ": " + v);
    return 0;
  }

  private static void fail(final String why) {
    System.err.println("AeronPeer: " + why);
    System.exit(1);
  }

  /**
   * The IPC channel, with Aeron's default term length (64 MiB): a shorter one holds the publisher
   * to limits that the driver's conductor thread, competing for the two CPUs with the two spinning
   * threads, advances too seldom (1 MiB: 2.5 M msgs/s here, 8 MiB: 15 M, 64 MiB: 16-19 M).
   */
  private static final String CHANNEL = "aeron:ipc";

  private String aeronDir() {
    return "/dev/shm/" + name + "-aeron";
  }

  /** Launches the embedded media driver that the other process connects to as well. */
  private MediaDriver launchDriver() {
    return MediaDriver.launch(
        new MediaDriver.Context()
            .aeronDirectoryName(aeronDir())
            .threadingMode(ThreadingMode.SHARED)
            .dirDeleteOnStart(true)
            .dirDeleteOnShutdown(true));
  }

  /** Connects to the driver the other process embeds, retrying until it is up. */
  private Aeron connect(final String dir) throws InterruptedException {
    final long deadline = System.nanoTime() + timeoutNs;
    for (; ; ) {
      try {
        return Aeron.connect(new Aeron.Context().aeronDirectoryName(dir));
      } catch (final RuntimeException e) {
        if (System.nanoTime() > deadline) {
          throw e;
        }
        Thread.sleep(10);
      }
    }
  }

  private Image awaitImage(final Subscription sub, final ExclusivePublication pub)
      throws InterruptedException {
    final long deadline = System.nanoTime() + timeoutNs;
    while (!sub.isConnected() || (pub != null && !pub.isConnected())) {
      if (System.nanoTime() > deadline) {
        fail("stream " + sub.streamId() + ": the other process never connected");
      }
      Thread.sleep(1);
    }
    return sub.imageAtIndex(0);
  }

  /** Pins the calling thread (not the JVM's others) to the CPU given by --pin. */
  private void pinThread() throws IOException, InterruptedException {
    if (pin < 0 || Runtime.getRuntime().availableProcessors() < 2) {
      return;
    }
    final String tid = Files.readSymbolicLink(Path.of("/proc/thread-self")).getFileName().toString();
    final Process p =
        new ProcessBuilder("taskset", "-pc", Integer.toString(pin), tid)
            .redirectErrorStream(true)
            .redirectOutput(ProcessBuilder.Redirect.DISCARD)
            .start();
    if (p.waitFor() != 0) {
      System.err.println("AeronPeer: taskset -pc " + pin + " " + tid + " failed");
    }
  }

  private static UnsafeBuffer message() {
    return new UnsafeBuffer(BufferUtil.allocateDirectAligned(MSG, BitUtil.CACHE_LINE_LENGTH));
  }

  /** The samples' BusySpinIdleStrategy: a spin-wait hint when a poll found nothing. */
  private static void idle(final int fragments) {
    if (fragments == 0) {
      Thread.onSpinWait();
    }
  }

  private static void offer(final ExclusivePublication pub, final DirectBuffer buf, final int off) {
    while (pub.offer(buf, off, MSG) < 0L) {
      Thread.onSpinWait();
    }
  }

  private long received;
  private long lastSeq = -2;

  private void ping() throws Exception {
    try (MediaDriver driver = launchDriver();
        Aeron aeron = connect(driver.aeronDirectoryName());
        ExclusivePublication pub = aeron.addExclusivePublication(CHANNEL, PING_STREAM);
        Subscription sub = aeron.addSubscription(CHANNEL, PONG_STREAM)) {
      final Image image = awaitImage(sub, pub);
      final FragmentHandler onPong =
          (buffer, offset, length, header) -> {
            lastSeq = buffer.getLong(offset);
            received++;
          };
      pinThread();
      final UnsafeBuffer out = message();
      final long total = warmup + count;
      final long[] rtts = new long[(int) count];
      for (long i = 0; i < total; i++) {
        final long t0 = System.nanoTime();
        out.putLong(0, i);
        offer(pub, out, 0);
        while (received != i + 1) {
          idle(image.poll(onPong, FRAGMENT_LIMIT));
        }
        if (lastSeq != i) {
          fail("round trip " + i + ": got seq " + lastSeq);
        }
        if (i >= warmup) {
          rtts[(int) (i - warmup)] = System.nanoTime() - t0;
        }
      }
      out.putLong(0, STOP);
      offer(pub, out, 0);
      report(rtts);
    }
  }

  private boolean stopped;

  private void echo() throws Exception {
    try (Aeron aeron = connect(aeronDir());
        Subscription sub = aeron.addSubscription(CHANNEL, PING_STREAM);
        ExclusivePublication pub = aeron.addExclusivePublication(CHANNEL, PONG_STREAM)) {
      final Image image = awaitImage(sub, pub);
      final FragmentHandler onPing =
          (buffer, offset, length, header) -> {
            if (buffer.getLong(offset) == STOP) {
              stopped = true;
            } else {
              offer(pub, buffer, offset);
            }
          };
      pinThread();
      while (!stopped) {
        idle(image.poll(onPing, FRAGMENT_LIMIT));
      }
    }
  }

  private void publish() throws Exception {
    try (MediaDriver driver = launchDriver();
        Aeron aeron = connect(driver.aeronDirectoryName());
        ExclusivePublication pub = aeron.addExclusivePublication(CHANNEL, STREAM)) {
      final long deadline = System.nanoTime() + timeoutNs;
      while (!pub.isConnected()) {
        if (System.nanoTime() > deadline) {
          fail("the subscriber never connected");
        }
        Thread.sleep(1);
      }
      pinThread();
      final UnsafeBuffer out = message();
      for (long seq = 0; seq < count; seq++) {
        for (int k = 0; k < MSG / 8; k++) {
          out.putLong(8 * k, seq + k);
        }
        offer(pub, out, 0);
      }
      // The subscriber exits once it has read them all.
      final long end = System.nanoTime() + 4 * timeoutNs;
      while (pub.isConnected() && System.nanoTime() < end) {
        Thread.sleep(1);
      }
    }
  }

  private long firstNs;

  private void subscribe() throws Exception {
    try (Aeron aeron = connect(aeronDir());
        Subscription sub = aeron.addSubscription(CHANNEL, STREAM)) {
      final Image image = awaitImage(sub, null);
      final FragmentHandler onMessage =
          (buffer, offset, length, header) -> {
            final long seq = buffer.getLong(offset);
            if (seq != received) {
              fail("stream: got seq " + seq + " where " + received + " was due");
            }
            if (received++ == warmup) {
              firstNs = System.nanoTime();
            }
          };
      pinThread();
      while (received < count) {
        idle(image.poll(onMessage, FRAGMENT_LIMIT));
      }
      final double secs = (System.nanoTime() - firstNs) / 1e9;
      final long timed = received - warmup;
      System.out.printf(
          "{\"received\":%d,\"seconds\":%.6f,\"msgs_per_s\":%.0f}%n", received, secs, timed / secs);
    }
  }

  /** Prints the percentiles as the Go, C and Rust peers do: sorted[min(n-1, floor(q*n))]. */
  private static void report(final long[] rtts) {
    Arrays.sort(rtts);
    final int n = rtts.length;
    final StringBuilder b = new StringBuilder("{");
    final String[] keys = {"rtt_p50_ns", "rtt_p90_ns", "rtt_p99_ns", "rtt_p999_ns"};
    final double[] qs = {0.50, 0.90, 0.99, 0.999};
    for (int k = 0; k < keys.length; k++) {
      b.append('"').append(keys[k]).append("\":").append(rtts[Math.min(n - 1, (int) (qs[k] * n))]);
      b.append(',');
    }
    b.append("\"rtt_max_ns\":").append(rtts[n - 1]).append(",\"round_trips\":").append(n).append('}');
    System.out.println(b);
  }

  /**
   * Runs one role.
   *
   * @param args the role and its flags.
   * @throws Exception on any failure, which ends the process with a stack trace and status 1.
   */
  public static void main(final String[] args) throws Exception {
    final AeronPeer p = new AeronPeer(args);
    switch (p.role) {
      case "ping" -> p.ping();
      case "echo" -> p.echo();
      case "pub" -> p.publish();
      default -> p.subscribe();
    }
  }
}
