# frozen_string_literal: true

# Smoke tests meant to run under GC.stress: GC_STRESS=1 rspec spec/gc_stress_spec.rb
# Without GC_STRESS they run with normal GC (quickly). The msgpack calls of each example
# run inside `stressed { }`, which turns GC.stress on only when GC_STRESS is set; the
# expectations run afterwards with normal GC (RSpec's own allocations under GC.stress
# would make the file take minutes). The around hook restores GC.stress whatever happens.

RSpec.describe "GC stress smoke tests" do
  around do |example|
    previous = GC.stress
    begin
      example.run
    ensure
      GC.stress = previous
    end
  end

  def stressed
    GC.stress = true if ENV["GC_STRESS"]
    yield
  ensure
    GC.stress = false
  end

  let(:nested) do
    {
      "ints" => [0, -1, 128, -33, 65_536, 2**32, -2**63, 2**64 - 1],
      "floats" => [1.5, -0.0],
      "strings" => ["", "short", "é" * 20, "x" * 300, "\xFF\x00".b * 150],
      "nested" => [[[{ "deep" => [nil, true, false] }]]],
      :sym => { 1 => "one", nil => [] },
    }
  end

  let(:normal_form) do
    MessagePack.unpack(MessagePack.pack(nested))
  end

  it "round-trips nested objects" do
    plain, frozen = stressed do
      bytes = MessagePack.pack(nested)
      [MessagePack.unpack(bytes), MessagePack.unpack(bytes, symbolize_keys: true, freeze: true)]
    end
    expect(plain).to eq(normal_form)
    expect(frozen).to be_frozen
    expect(frozen[:strings].last).to eq("\xFF\x00".b * 150)
  end

  it "round-trips through Packer/Unpacker with an IO" do
    out = stressed do
      io = StringIO.new(+"")
      pk = MessagePack::Packer.new(io)
      3.times { pk.write(nested) }
      pk.flush
      io.rewind
      MessagePack::Unpacker.new(io).each.to_a
    end
    expect(out).to eq([normal_form] * 3)
  end

  it "streams byte by byte with feed_each" do
    small = { "a" => [1, -1, 2**40, "é" * 5, "x" * 40, "\x00\xFF".b], "b" => { "c" => [nil, 1.5, [[]]] } }
    bytes = MessagePack.pack(small) * 2
    out = stressed do
      u = MessagePack::Unpacker.new
      got = []
      bytes.each_byte { |b| u.feed_each(b.chr.b) { |o| got << o } }
      got
    end
    expect(out).to eq([small, small])
  end

  it "packs and unpacks registered ext types, also byte by byte" do
    point = Struct.new(:x, :y)
    factory = MessagePack::Factory.new
    factory.register_type(1, point, packer: ->(pt) { [pt.x, pt.y].pack("l>l>") },
                                    unpacker: ->(d) { point.new(*d.unpack("l>l>")) })
    factory.register_type(MessagePack::Timestamp::TYPE, Time,
                          packer: MessagePack::Time::Packer, unpacker: MessagePack::Time::Unpacker)
    obj = { "p" => [point.new(1, -2), point.new(3, 4)], "t" => Time.at(1_700_000_000, 5, :nanosecond) }
    whole, streamed = stressed do
      data = factory.dump(obj)
      u = factory.unpacker
      data.each_byte { |b| u.feed(b.chr.b) }
      [factory.load(data), u.read]
    end
    expect(whole).to eq(obj)
    expect(streamed).to eq(obj)
  end

  it "handles unknown ext types and symbols" do
    out = stressed do
      factory = MessagePack::Factory.new
      factory.register_type(0, Symbol)
      data = factory.dump([:a, :bc, MessagePack::ExtensionValue.new(9, "z" * 20)])
      factory.load(data, allow_unknown_ext: true)
    end
    expect(out).to eq([:a, :bc, MessagePack::ExtensionValue.new(9, "z" * 20)])
  end

  it "survives errors raised mid-stream" do
    bytes = MessagePack.pack(nested)
    errors, out = stressed do
      errs = []
      u = MessagePack::Unpacker.new
      u.feed(bytes.byteslice(0, 50))
      begin
        u.read
      rescue EOFError => e
        errs << e.class
      end
      u.reset
      u.feed(bytes)
      result = u.read
      begin
        MessagePack.unpack("\xC1".b)
      rescue MessagePack::MalformedFormatError => e
        errs << e.class
      end
      [errs, result]
    end
    expect(errors).to eq([EOFError, MessagePack::MalformedFormatError])
    expect(out).to eq(normal_form)
  end

  it "keeps buffers holding large strings alive" do
    out = stressed do
      b = MessagePack::Buffer.new
      b << "y" * (600 * 1024)
      b << "tail"
      GC.start
      b.read
    end
    expect(out).to eq("y" * (600 * 1024) + "tail")
  end
end
