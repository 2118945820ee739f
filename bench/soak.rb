# frozen_string_literal: true

# Soak test: millions of mixed msgpack operations in one process, watching for slow growth
# (leaks) in RSS, Symbol.all_symbols.size and the number of memory mappings
# (/proc/self/maps lines). Run through script/soak, which picks msgpack-rs (-I lib) or the
# C gem (--c-gem); see `script/soak --help`.
#
# The workload is a weighted mix of small operations (OPS below): pack/unpack of varied
# shapes, Packer/Unpacker streaming with random chunk sizes, symbolize_keys over ever-new
# keys, factories with ext types (plain, recursive, Symbol, Timestamp) and re-registration
# (on a fresh Factory and on DefaultFactory), pools, malformed input and ext procs that
# raise, and - msgpack-rs only - mapped files (with abandoned each enumerators), compact!
# on objects and MessagePack.compact!, decoder limits and re-entrant calls that must be
# refused. Nothing is kept between operations except a few long-lived objects, so every
# metric should settle after a warm-up.
#
# Every --sample-every operations it runs GC.start and records RSS, Symbols, maps lines and
# the GC count. At the end it compares the average of the last third of the samples with
# the average of the middle third; a metric that grew beyond both the relative tolerance
# and an absolute slack is a sustained upward trend, and the exit status is 1.

require "optparse"
require "stringio"
require "tmpdir"

OPTIONS = {
  duration: 90.0, ops: nil, sample_every: 50_000, seed: 1, tolerance: 10.0, quiet: false,
}
OptionParser.new do |o|
  o.banner = "usage: ruby [-I lib] bench/soak.rb [options]"
  o.on("--duration SECONDS", Float, "stop after this long (default 90)") { |v| OPTIONS[:duration] = v }
  o.on("--ops N", Integer, "stop after N operations (default: no limit; whichever comes first)") { |v| OPTIONS[:ops] = v }
  o.on("--sample-every N", Integer, "operations between samples (default 50000)") { |v| OPTIONS[:sample_every] = v }
  o.on("--seed N", Integer, "random seed (default 1)") { |v| OPTIONS[:seed] = v }
  o.on("--tolerance PCT", Float, "allowed growth of the last third over the middle third, % (default 10)") { |v| OPTIONS[:tolerance] = v }
  o.on("--quiet", "print only the summary") { OPTIONS[:quiet] = true }
  o.on("--inject-leak KIND", %w[rss symbols maps], "leak on purpose (rss, symbols or maps), to see the check fail") do |v|
    OPTIONS[:inject] = v
  end
end.parse!

require "msgpack"
require_relative "../spec/support/random_objects"

RS = defined?(MessagePack::MappedUnpacker) ? true : false
VERSION = Gem::Version.new(MessagePack::VERSION)
FEATURES = {
  recursive: RS || VERSION >= Gem::Version.new("1.5"),
  pool: MessagePack::Factory.method_defined?(:pool),
  timestamp: defined?(MessagePack::Timestamp) ? true : false,
  mapped: RS,
  compact: MessagePack.respond_to?(:compact!),
  limits: RS,
  reentrant: RS,
}.freeze

module Soak
  module_function

  def rss_kib = File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1].to_i
  def maps = File.foreach("/proc/self/maps").count
  def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

RNG = Random.new(OPTIONS[:seed])

# ---------------------------------------------------------------- data

Point = Struct.new(:x, :y)
Tree = Struct.new(:label, :children)
class Blob
  attr_reader :bytes

  def initialize(bytes) = @bytes = bytes
  def ==(other) = other.is_a?(Blob) && other.bytes == bytes
  def to_msgpack_ext = bytes
  def self.from_msgpack_ext(data) = new(data)
end
class Boom < StandardError; end
Bomb = Struct.new(:fuse) # its ext packer raises

# Shapes from the shared generator (spec/support/random_objects.rb, profile :soak), drawing
# from RNG like everything else here.
GEN = RandomObjects.generator(:soak, RNG)

SHAPES = Array.new(200) { GEN.value }.freeze
STREAM_COUNT = 60
STREAM = Array.new(STREAM_COUNT) { MessagePack.pack(GEN.value) }.join.freeze
MALFORMED = [
  "\xc1".b, "\x92\x01".b, "\xdb\xff\xff\xff\xff".b, "\x81\xa1k".b, "\xd9\x05ab".b, "\xc7\x05\x01ab".b,
  "\x93\xc1\x01\x02".b,
  "\xdd\x7f\xff\xff\xff".b,
].freeze

def build_factory
  f = MessagePack::Factory.new
  f.register_type(1, Point, packer: ->(p) { [p.x, p.y].pack("q<q<") }, unpacker: ->(d) { Point.new(*d.unpack("q<q<")) })
  f.register_type(2, Blob)
  f.register_type(3, Boom, packer: ->(_) { "" }, unpacker: ->(_) { raise Boom, "from an ext proc" })
  f.register_type(5, Bomb, packer: ->(_) { raise Boom, "from an ext packer" }, unpacker: ->(d) { d })
  if FEATURES[:recursive]
    f.register_type(4, Tree, packer: ->(t, pk) { pk.write(t.label); pk.write(t.children) },
                             unpacker: ->(u) { Tree.new(u.read, u.read) }, recursive: true)
  end
  f.register_type(0, Symbol)
  f.register_type(-1, Time, packer: MessagePack::Time::Packer, unpacker: MessagePack::Time::Unpacker) if FEATURES[:timestamp]
  f
end

FACTORY = build_factory
POOL = FEATURES[:pool] ? FACTORY.pool(4) : nil
LONG_UNPACKER = MessagePack::Unpacker.new
STREAMING = FACTORY.unpacker
DIR = Dir.mktmpdir("msgpack-soak")
MAPPED_PATH = File.join(DIR, "records.msgpack")
File.binwrite(MAPPED_PATH, Array.new(500) { |i| MessagePack.pack({ "i" => i, "v" => SHAPES[i % SHAPES.size] }) }.join)
at_exit { FileUtils.remove_entry(DIR) if File.directory?(DIR) }

$unique = 0
$expected_errors = 0

# The C gem allocates for declared lengths, so hostile headers can raise NoMemoryError
# there (msgpack-rs never reserves more than the input holds).
DECODE_ERRORS = RS ? [StandardError] : [StandardError, NoMemoryError]

def expect_error
  yield
  raise "expected an exception"
rescue *DECODE_ERRORS => e
  raise if e.message == "expected an exception"

  $expected_errors += 1
end

def check(condition, what)
  raise "soak: wrong result: #{what}" unless condition
end

def ext_value
  v = [Point.new(RNG.rand(1000), -RNG.rand(1000)), Blob.new(GEN.string(30).b), :"s#{RNG.rand(100)}"]
  v << Tree.new("root", [Tree.new("leaf", []), 7]) if FEATURES[:recursive]
  v << Time.at(RNG.rand(2**33), RNG.rand(1_000_000_000), :nsec) if FEATURES[:timestamp]
  v
end

# ---------------------------------------------------------------- operations

OPS = {
  roundtrip: [30, lambda {
    obj = SHAPES[RNG.rand(SHAPES.size)]
    check(MessagePack.unpack(MessagePack.pack(obj)) == MessagePack.unpack(MessagePack.pack(obj)), "roundtrip")
  }],
  packer_unpacker: [8, lambda {
    pk = MessagePack::Packer.new
    n = RNG.rand(1..5)
    n.times { pk.write(SHAPES[RNG.rand(SHAPES.size)]) }
    pk.write_array_header(2).write(1).write_nil
    u = MessagePack::Unpacker.new
    u.feed(pk.to_s)
    count = 0
    u.each { count += 1 }
    check(count == n + 1, "packer/unpacker count")
  }],
  stream: [6, lambda {
    # Random chunks of the stream into a long-lived Unpacker.
    pos = 0
    count = 0
    while pos < STREAM.bytesize
      n = RNG.rand(1..1024)
      LONG_UNPACKER.feed_each(STREAM.byteslice(pos, n)) { count += 1 }
      pos += n
    end
    check(count == STREAM_COUNT, "stream count #{count}")
  }],
  symbolize: [8, lambda {
    keys = Array.new(3) { "key-#{$unique += 1}" }
    h = MessagePack.unpack(MessagePack.pack(keys.to_h { |k| [k, 1] }), symbolize_keys: true)
    check(h.keys.all?(Symbol), "symbolize")
  }],
  ext_factory: [10, lambda {
    v = ext_value
    check(FACTORY.load(FACTORY.dump(v)) == v, "ext factory")
    STREAMING.feed_each(FACTORY.dump(v)) { |o| check(o == v, "ext streaming") }
  }],
  reregister: [1, lambda {
    f = MessagePack::Factory.new
    f.register_type(1, Point, packer: ->(p) { p.x.to_s }, unpacker: ->(d) { Point.new(d.to_i, 0) })
    f.register_type(1, Point, packer: ->(p) { p.y.to_s }, unpacker: ->(d) { Point.new(0, d.to_i) })
    check(f.load(f.dump(Point.new(1, 2))) == Point.new(0, 2), "reregister")
    MessagePack::DefaultFactory.register_type(9, Blob)
    check(MessagePack.unpack(MessagePack.pack(Blob.new("z"))) == Blob.new("z"), "DefaultFactory")
  }],
  pool: [5, lambda {
    next OPS[:ext_factory][1].call unless POOL

    v = ext_value
    check(POOL.load(POOL.dump(v)) == v, "pool")
  }],
  malformed: [5, lambda {
    bytes = MALFORMED[RNG.rand(MALFORMED.size)]
    expect_error { MessagePack.unpack(bytes) }
    begin
      MessagePack.unpack(RNG.bytes(RNG.rand(1..20))) # random bytes: may decode, usually raise
    rescue *DECODE_ERRORS
      $expected_errors += 1
    end
    u = MessagePack::Unpacker.new
    u.feed("\xc1\x05".b)
    expect_error { u.read }
  }],
  ext_raise: [3, lambda {
    expect_error { FACTORY.load(FACTORY.dump([1, Boom.new, 2])) }
    expect_error { FACTORY.dump({ "a" => [1, Bomb.new(1)] }) }
  }],
  mapped: [2, lambda {
    next OPS[:roundtrip][1].call unless FEATURES[:mapped]

    case RNG.rand(4)
    when 0 then MessagePack::Unpacker.open(MAPPED_PATH).each.next # abandoned, not closed
    when 1 then MessagePack::Unpacker.open(MAPPED_PATH) { |u| u.seek(RNG.rand(0..100)); begin; u.read; rescue StandardError; $expected_errors += 1; end }
    when 2 then FACTORY.open_file(MAPPED_PATH, symbolize_keys: true) { |u| u.each.first(RNG.rand(1..20)) }
    else
      u = MessagePack::Unpacker.open(MAPPED_PATH)
      n = 0
      u.each { |_| break if (n += 1) > 50 }
      u.close
    end
  }],
  compact: [0.2, lambda {
    next OPS[:roundtrip][1].call unless FEATURES[:compact]

    [LONG_UNPACKER, STREAMING, FACTORY].sample(random: RNG).compact!
    MessagePack.compact! if RNG.rand < 0.05
  }],
  limits: [1, lambda {
    next OPS[:roundtrip][1].call unless FEATURES[:limits]

    expect_error { MessagePack.unpack(MessagePack.pack("x" * 100), max_str_len: 10) }
    expect_error { MessagePack.unpack(MessagePack.pack([[[[1]]]]), max_depth: 2) }
  }],
  reentrant: [1, lambda {
    next OPS[:roundtrip][1].call unless FEATURES[:reentrant]

    u = MessagePack::Unpacker.new
    refused = 0
    u.register_type(5) { |d| begin; u.reset; rescue MessagePack::UnpackError; refused += 1; end; d }
    u.feed("\x92\xd4\x05x\x01".b)
    check(u.read == ["x", 1] && refused == 1, "reentrant reset refused")
  }],
}.freeze

# --inject-leak: something that really grows, once per 1000 operations.
LEAKED = []
INJECT = {
  "rss" => -> { LEAKED << ("x" * 16_384) },
  "symbols" => -> { LEAKED << "leak-#{LEAKED.size}".to_sym },
  "maps" => -> { LEAKED << Fiber.new { Fiber.yield }.tap(&:resume) }, # a live Fiber keeps its stack mapping
}.freeze

WEIGHTED = OPS.flat_map { |name, (weight, _)| [name] * (weight * 10).round }.freeze
COUNTS = Hash.new(0)

# ---------------------------------------------------------------- run

def sample(ops, started)
  GC.start
  { ops: ops, secs: Soak.now - started, rss_kib: Soak.rss_kib, symbols: Symbol.all_symbols.size,
    maps: Soak.maps, gc: GC.count, errors: $expected_errors }
end

def row(s, prev)
  rate = prev ? (s[:ops] - prev[:ops]) / [s[:secs] - prev[:secs], 1e-9].max : 0
  format("%10d %8.1f %9.0f %9.1f %9d %7d %7d %9d", s[:ops], s[:secs], rate, s[:rss_kib] / 1024.0, s[:symbols],
         s[:maps], s[:gc], s[:errors])
end

HEADER = format("%10s %8s %9s %9s %9s %7s %7s %9s", "ops", "secs", "ops/s", "RSS MiB", "Symbols", "maps", "GCs", "errors")

label = RS ? "msgpack-rs #{MessagePack::VERSION}" : "C gem #{MessagePack::VERSION}"
puts "soak: #{label} on #{RUBY_DESCRIPTION}"
puts "      duration #{OPTIONS[:duration]} s#{OPTIONS[:ops] ? ", at most #{OPTIONS[:ops]} ops" : ''}, sample every " \
     "#{OPTIONS[:sample_every]} ops, seed #{OPTIONS[:seed]}, tolerance #{OPTIONS[:tolerance]}%"
skipped = FEATURES.reject { |_, v| v }.keys
puts "      not available here (their weight goes to roundtrip/ext_factory): #{skipped.join(', ')}" unless skipped.empty?
puts HEADER unless OPTIONS[:quiet]

started = Soak.now
samples = [sample(0, started)]
puts row(samples.last, nil) unless OPTIONS[:quiet]
# About 30 rows whatever the length of the run (every sample is used for the verdict).
print_every = OPTIONS[:duration] / 30.0
printed = samples.last
ops = 0
deadline = started + OPTIONS[:duration]
loop do
  OPTIONS[:sample_every].times do |i|
    name = WEIGHTED[RNG.rand(WEIGHTED.size)]
    OPS[name][1].call
    COUNTS[name] += 1
    INJECT[OPTIONS[:inject]].call if OPTIONS[:inject] && (i % 1000).zero?
  end
  ops += OPTIONS[:sample_every]
  samples << sample(ops, started)
  done = Soak.now >= deadline || (OPTIONS[:ops] && ops >= OPTIONS[:ops])
  if !OPTIONS[:quiet] && (done || samples.last[:secs] - printed[:secs] >= print_every)
    puts row(samples.last, printed)
    printed = samples.last
  end
  break if done
end

# ---------------------------------------------------------------- verdict

# [label, format, absolute slack, relative?]: a metric fails when the last third's average
# exceeds the middle third's by more than the slack and (for RSS, whose baseline is
# meaningful) by more than --tolerance percent. Ruby's own Symbols and mappings are a
# fixed base, so any sustained rise beyond the slack counts for those.
METRICS = {
  rss_kib: ["RSS", ->(v) { format("%.1f MiB", v / 1024.0) }, 4 * 1024, true],
  symbols: ["Symbols", ->(v) { format("%.0f", v) }, 300, false],
  maps: ["maps lines", ->(v) { format("%.0f", v) }, 16, false],
}.freeze

avg = ->(list, key) { list.sum { |s| s[key] }.to_f / list.size }
third = samples.size / 3
failed = []
puts
puts "soak summary: #{label}, #{ops} ops in #{format('%.1f', samples.last[:secs])} s " \
     "(#{format('%.0f', ops / samples.last[:secs])} ops/s), #{samples.size} samples, #{$expected_errors} expected exceptions"
puts format("%-11s %12s %12s %12s %12s %8s  %s", "metric", "start", "middle 1/3", "last 1/3", "max", "growth", "verdict")
if third < 2
  puts "  (fewer than 6 samples: no trend check; use a longer --duration or a smaller --sample-every)"
else
  middle = samples[third...(2 * third)]
  last = samples[(samples.size - third)..]
  METRICS.each do |key, (name, fmt, slack, relative)|
    m = avg.call(middle, key)
    l = avg.call(last, key)
    growth = m.zero? ? 0.0 : (l - m) / m * 100
    bad = (l - m) > slack && (!relative || growth > OPTIONS[:tolerance])
    failed << name if bad
    puts format("%-11s %12s %12s %12s %12s %7.1f%%  %s", name, fmt.call(samples.first[key]), fmt.call(m), fmt.call(l),
                fmt.call(samples.map { |s| s[key] }.max), growth, bad ? "GROWING" : "flat")
  end
end
puts "operations: " + COUNTS.sort_by { |k, _| k.to_s }.map { |k, v| "#{k}=#{v}" }.join(" ")
if failed.empty?
  puts "soak: OK"
else
  puts "soak: FAILED: sustained growth in #{failed.join(', ')}"
  exit 1
end
