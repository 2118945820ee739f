# frozen_string_literal: true

# Reliability finding 3: every Factory#register_type kept all earlier versions of the
# factory's tables forever (100,000 re-registrations on DefaultFactory: RSS 14 -> 1,012 MB,
# GC.start 7 -> 135 ms). Now an old version is released once nothing uses it any more (no
# packer or unpacker made from it is alive): memory, GC time and
# ObjectSpace.memsize_of(factory) stay flat over any number of re-registrations. The same
# for Unpacker#register_type and Packer#register_type loops.
#
# Each case runs in a child process (fresh heap) and samples after a warm-up.

module FactoryTablesSpec
  # Re-registers `count` times on FACTORY; every 100th round makes a packer and an
  # unpacker (and every 1000th a pool) and keeps the last KEEP of them alive, using them
  # so they hold their table version. Samples RSS, GC time and memsize_of(FACTORY) five
  # times; then lets every kept object go and re-registers once more.
  CHURN = <<~'RUBY'
    require "objspace"
    class Foo
      attr_reader :n
      def initialize(n = 0) = @n = n
      def to_msgpack_ext = [@n].pack("N")
      def self.from_msgpack_ext(data) = new(data.unpack1("N"))
    end
    KEEP = 40

    def gc_ms = Array.new(3) { Probe.gc_ms }.sort[1] # the median of three

    def churn(factory, count)
      kept = []
      samples = []
      count.times do |i|
        factory.register_type(1, Foo, packer: :to_msgpack_ext, unpacker: :from_msgpack_ext)
        if (i % 100).zero?
          pk = factory.packer
          pk.write(Foo.new(i))
          u = factory.unpacker.feed(pk.to_s)
          raise "wrong value" unless u.read.n == i
          kept << pk << u
          kept << factory.pool(1).tap { |pool| pool.load(pk.to_s) } if (i % 1000).zero?
          kept.shift while kept.size > KEEP
        end
        if (i % (count / 5)).zero? && i.positive?
          s = Probe.sample
          samples << s.merge("gc_ms" => gc_ms, "memsize" => ObjectSpace.memsize_of(factory), "i" => i)
        end
      end
      kept.clear
      GC.start
      factory.register_type(1, Foo, packer: :to_msgpack_ext, unpacker: :from_msgpack_ext)
      GC.start
      { "samples" => samples, "released" => ObjectSpace.memsize_of(factory) }
    end
  RUBY

  # Growth from the first sample (after 20% of the rounds) to the last.
  module Check
    module_function

    def rss_growth_mib(samples) = (samples.last["rss_kib"] - samples.first["rss_kib"]) / 1024.0
  end
end

RSpec.describe "Reliability: re-registering ext types does not accumulate tables (finding 3)", if: !MSGPACK_SPEC_ORACLE do
  def expect_flat(result, single_version)
    samples = result["samples"]
    expect(samples.size).to eq(4)
    growth = FactoryTablesSpec::Check.rss_growth_mib(samples)
    expect(growth).to be < 12, "RSS grew #{growth.round(1)} MiB: #{samples.map { |s| s['rss_kib'] / 1024 }}"
    first_gc, last_gc = samples.first["gc_ms"], samples.last["gc_ms"]
    expect(last_gc).to be < [first_gc * 3, first_gc + 25].max, "GC.start went from #{first_gc} to #{last_gc} ms"
    # Versions held by live objects (KEEP of them), and by dead ones until a GC frees them
    # and the next registration prunes them: bounded, and not growing.
    memsizes = samples.map { |s| s["memsize"] }
    expect(memsizes.max).to be < 200 * single_version
    expect(memsizes.last).to be <= 2 * memsizes.first
    expect(result["released"]).to be < 3 * single_version
  end

  # memsize_of a factory holding one version of one registration.
  let(:single_version) do
    require "objspace"
    f = MessagePack::Factory.new
    f.register_type(1, Class.new, packer: ->(_) { "" }, unpacker: ->(d) { d })
    ObjectSpace.memsize_of(f)
  end

  it "200,000 re-registrations on DefaultFactory, with packers, unpackers and pools made in between" do
    result = child_json(FactoryTablesSpec::CHURN + <<~'RUBY')
      r = churn(MessagePack::DefaultFactory, 200_000)
      raise "DefaultFactory lost its registration" unless MessagePack.unpack(MessagePack.pack(Foo.new(7))).n == 7
      Probe.report(r)
    RUBY
    expect_flat(result, single_version)
  end

  it "200,000 re-registrations on a fresh Factory, alternating two classes and a Symbol registration" do
    result = child_json(FactoryTablesSpec::CHURN + <<~'RUBY')
      factory = MessagePack::Factory.new
      class Bar < Foo; end
      200.times { |i| factory.register_type(2, i.even? ? Bar : Foo); factory.register_type(0, Symbol) }
      r = churn(factory, 200_000)
      raise "lost a registration" unless factory.load(factory.dump([:s, Foo.new(3)])).then { |s, f| s == :s && f.n == 3 }
      Probe.report(r)
    RUBY
    expect_flat(result, single_version)
  end

  it "Unpacker#register_type and Packer#register_type loops (200,000 each) keep RSS and memsize flat" do
    result = child_json(<<~'RUBY')
      require "objspace"
      class Foo
        def self.from(_payload) = new
      end
      u = MessagePack::Unpacker.new
      pk = MessagePack::Packer.new
      samples = []
      200_000.times do |i|
        u.register_type(1, Foo, :from)
        pk.register_type(1, Foo) { |_| "" }
        if (i % 100).zero?
          u.feed("\xd4\x01\x00".b)
          raise "wrong" unless u.read.is_a?(Foo)
          pk.write(Foo.new)
        end
        samples << Probe.sample.merge("u" => ObjectSpace.memsize_of(u), "pk" => ObjectSpace.memsize_of(pk), "out" => pk.size) if (i % 40_000).zero? && i.positive?
        pk.reset if (i % 40_000).zero?
      end
      Probe.report("samples" => samples)
    RUBY
    samples = result["samples"]
    expect(FactoryTablesSpec::Check.rss_growth_mib(samples)).to be < 8
    expect(samples.map { |s| s["u"] }.uniq.size).to eq(1)
    expect(samples.map { |s| s["pk"] - s["out"] }.max - samples.map { |s| s["pk"] - s["out"] }.min).to be < 64 * 1024
  end

  it "an ext proc that re-registers its own type while decoding: each object uses the version it started with" do
    result = child_json(<<~'RUBY')
      class Foo; end
      f = MessagePack::Factory.new
      gen = 0
      register = lambda do
        mine = gen += 1
        f.register_type(1, Foo, packer: ->(_) { "" }, unpacker: ->(_) { register.call; mine })
      end
      register.call
      u = f.unpacker
      counts = []
      2000.times do
        u.feed("\x93\xd4\x01\x00\xd4\x01\x00\xd4\x01\x00".b)
        counts << u.read.uniq.size
        GC.start if (gen % 500).zero?
      end
      Probe.report("counts" => counts.uniq, "gen" => gen)
    RUBY
    # An Unpacker keeps the registrations it was made with: its reads never see the new ones.
    expect(result["counts"]).to eq([1])
    expect(result["gen"]).to eq(6001)
  end
end
