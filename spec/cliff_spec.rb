# frozen_string_literal: true

# No cliff after one big message (issue "Fast where real apps spend their time"): the
# per-Ractor packer behind MessagePack.pack / #to_msgpack / Factory#dump sizes each output
# from the last message, on every path, and gives a big message's memory back when its
# call ends. Before, a callback path (a Ruby #to_msgpack) never lowered the size hint:
# every later small call allocated, and dropped, a String as big as the big message, and
# Ruby's malloc accounting ran a GC every few calls (148-199 per 1,000 calls).
#
# Speed itself is measured by bench/cliff.rb; these examples check what makes the cliff:
# GCs per 1,000 calls, bytes allocated per call, memory kept afterwards.

module CliffSpec
  EventTime = Struct.new(:sec) do
    def to_msgpack(packer = nil) = sec.to_msgpack(packer)
  end

  module_function

  # GC runs during 1,000 small callback events.
  def gcs_per_1000(event)
    before = GC.count
    1000.times { event.to_msgpack }
    GC.count - before
  end

  # Bytes malloc'd (as Ruby counts them) by one call, with the GC off.
  def malloc_bytes
    GC.disable
    before = GC.stat(:malloc_increase_bytes)
    yield
    GC.stat(:malloc_increase_bytes) - before
  ensure
    GC.enable
  end
end

RSpec.describe "no cliff after one big message" do
  let(:t) { CliffSpec::EventTime.new(1_700_000_000) }
  let(:event) { [t, { "msg" => "hello" }] }

  # Many live objects make every GC expensive, as in a real process.
  around do |example|
    live = Array.new(100_000) { |i| "r#{i}" }
    example.run
    live.clear
  end

  [["a direct message (no callback)", ->(t) { ["fwd", "x".b * 8_000_000] }],
   ["a message through a callback", ->(t) { ["fwd", "x".b * 8_000_000, t] }]].each do |how, big|
    it "small callback events after #{how} of 8 MB run at most one extra GC per 1,000 calls" do
      GC.start
      baseline = CliffSpec.gcs_per_1000(event)
      big.call(t).to_msgpack
      GC.start
      after = CliffSpec.gcs_per_1000(event)
      expect(after).to be <= baseline + 1
    end
  end

  it "the first small call after a big message allocates no more than 1 MiB up front" do
    MessagePack.pack(["fwd", "x".b * 8_000_000])
    bytes = CliffSpec.malloc_bytes { MessagePack.pack(event) }
    expect(bytes).to be < 2 * 1024 * 1024
    bytes = CliffSpec.malloc_bytes { MessagePack.pack(event) }
    expect(bytes).to be < 64 * 1024
  end

  it "Factory#dump and MessagePack.pack through a callback keep nothing of a 64 MB message" do
    [MessagePack::DefaultFactory, MessagePack::Factory.new].each do |factory|
      packed = factory.dump(["fwd", "x".b * 64_000_000, t])
      expect(packed.bytesize).to be > 64_000_000
      packed = nil
      # The per-Ractor packer gave its buffer back when the call ended.
      expect(factory.compact!.bytes_released).to be < 1024 * 1024
      expect(factory.load(factory.dump(event))).to eq([1_700_000_000, { "msg" => "hello" }])
    end
  end

  it "a user's own Packer keeps its buffer (the caller owns it) until compact!" do
    pk = MessagePack::Packer.new
    pk.write(["fwd", "x".b * 8_000_000, t])
    pk.to_s
    pk.reset
    expect(pk.compact!.bytes_released).to be >= 0
    pk.write(event)
    expect(MessagePack.unpack(pk.to_s)).to eq([1_700_000_000, { "msg" => "hello" }])
  end

  it "Factory#load / MessagePack.unpack keep nothing of a big message either" do
    big = MessagePack.pack(Array.new(200_000) { |i| i })
    expect(MessagePack.unpack(big).size).to eq(200_000)
    report = MessagePack.compact!
    # The unpack scratch keeps at most 1 MiB of value stack between calls.
    expect(report.bytes_before).to be < 4 * 1024 * 1024
    expect(MessagePack.unpack(MessagePack.pack([1]))).to eq([1])
  end
end
