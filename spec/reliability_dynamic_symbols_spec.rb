# frozen_string_literal: true

# Reliability finding 2: symbolize_keys: true interned static (immortal) Symbols: a
# stream of 1M unique keys left 1,000,000 Symbols and 381 MB behind. Now decoded Symbols
# are dynamic (collectable), as the C gem makes them: after GC.start,
# Symbol.all_symbols.size is back near where it started and RSS stays flat. The same holds
# for ext Symbols (optimized_symbols_parsing, and Symbol.from_msgpack_ext). The per-Ractor
# map-key cache keeps at most its 256 most recent keys alive (MessagePack.compact! drops
# them).
#
# Measured in child processes (fresh heaps): Probe.sample (spec/support/growth.rb) runs
# GC.start and reads VmRSS, Symbol.all_symbols.size and /proc/self/maps.

module DynamicSymbolsSpec
  # Decodes `rounds` x `per_round` maps of 1000 unique keys each with `decode`, sampling
  # after each round; reports the samples and the baseline.
  CHURN = <<~'RUBY'
    def unique_map(tag, i, len: 24, count: 1000)
      Array.new(count) { |k| ["#{tag}-#{i}-#{k}-".ljust(len, "x"), k] }.to_h
    end

    def churn(rounds:, per_round:, &decode)
      GC.start
      base = Probe.sample
      samples = Array.new(rounds) do |r|
        per_round.times { |i| decode.call(r * per_round + i) }
        Probe.sample
      end
      { "base" => base, "samples" => samples }
    end
  RUBY

  KEY_CACHE_SLOTS = 256
  # What may stay alive after a churn besides the key cache: the last decoded message
  # when a stale pointer to it is left on the machine stack, which Ruby's GC scans
  # conservatively (seen on 3.4: freed by a later GC), and a few Symbols Ruby makes on
  # its own. The bug left every key behind: 100,000s.
  def self.slack(keys_per_message) = keys_per_message + 50
  SLACK = slack(1000)
  SMALL_SLACK = slack(100)
end

RSpec.describe "Reliability: decoded Symbols are collectable (finding 2)", if: !MSGPACK_SPEC_ORACLE do
  # Symbols left after the churn (beyond the baseline), and RSS growth from the first
  # round's sample to the last one's, in MiB.
  def symbols_left(result) = result["samples"].last["symbols"] - result["base"]["symbols"]
  def rss_growth_mib(result) = (result["samples"].last["rss_kib"] - result["samples"].first["rss_kib"]) / 1024.0

  it "symbolize_keys: 300,000 unique keys through Unpacker#read leave no Symbols and no RSS growth behind" do
    result = child_json(DynamicSymbolsSpec::CHURN + <<~'RUBY')
      u = MessagePack::Unpacker.new(symbolize_keys: true)
      r = churn(rounds: 3, per_round: 100) { |i| u.feed(MessagePack.pack(unique_map("read", i))); u.read }
      Probe.report(r)
    RUBY
    expect(symbols_left(result)).to be <= DynamicSymbolsSpec::KEY_CACHE_SLOTS + DynamicSymbolsSpec::SLACK
    expect(rss_growth_mib(result)).to be < 8
  end

  it "the same through MessagePack.unpack, Factory#load, a pool, feed_each and freeze: true" do
    result = child_json(DynamicSymbolsSpec::CHURN + <<~'RUBY')
      factory = MessagePack::Factory.new
      pool = factory.pool(2, symbolize_keys: true)
      streaming = factory.unpacker(symbolize_keys: true, freeze: true)
      r = churn(rounds: 2, per_round: 100) do |i|
        data = MessagePack.pack([unique_map("a", i), { "nested" => unique_map("b", i, len: 40) }])
        MessagePack.unpack(data, symbolize_keys: true)
        factory.load(data, symbolize_keys: true)
        pool.load(data)
        streaming.feed_each(data.byteslice(0, 7)) { }
        streaming.feed_each(data.byteslice(7..)) { |o| raise "lost a key" unless o[1][:nested].size == 1000 }
      end
      Probe.report(r)
    RUBY
    expect(symbols_left(result)).to be <= DynamicSymbolsSpec::KEY_CACHE_SLOTS + DynamicSymbolsSpec.slack(2000)
    expect(rss_growth_mib(result)).to be < 8
  end

  it "keys longer than the key cache takes (> 48 bytes) are collected too" do
    result = child_json(DynamicSymbolsSpec::CHURN + <<~'RUBY')
      r = churn(rounds: 2, per_round: 100) { |i| MessagePack.unpack(MessagePack.pack(unique_map("long", i, len: 80)), symbolize_keys: true) }
      Probe.report(r)
    RUBY
    expect(symbols_left(result)).to be <= DynamicSymbolsSpec::SLACK
  end

  it "the key cache keeps at most its 256 slots alive, and MessagePack.compact! lets them go" do
    result = child_json(DynamicSymbolsSpec::CHURN + <<~'RUBY')
      r = churn(rounds: 1, per_round: 500) { |i| MessagePack.unpack(MessagePack.pack(unique_map("c", i, count: 100)), symbolize_keys: true) }
      MessagePack.compact!
      r["compacted"] = Probe.sample
      Probe.report(r)
    RUBY
    expect(symbols_left(result)).to be_between(1, DynamicSymbolsSpec::KEY_CACHE_SLOTS + DynamicSymbolsSpec::SMALL_SLACK)
    expect(result["compacted"]["symbols"] - result["base"]["symbols"]).to be <= DynamicSymbolsSpec::SMALL_SLACK
  end

  it "each Ractor's key cache is its own and bounded the same way" do
    result = child_json(DynamicSymbolsSpec::CHURN + RactorHelpers::REQUIRE_LINE + <<~'RUBY')
      Warning[:experimental] = false
      GC.start
      base = Probe.sample
      ractors = Array.new(2) do |n|
        Ractor.new(n) do |tag|
          100.times do |i|
            keys = Array.new(1000) { |k| ["r#{tag}-#{i}-#{k}-pad", k] }.to_h
            MessagePack.unpack(MessagePack.pack(keys), symbolize_keys: true)
          end
          :done
        end
      end
      done = ractors.map { |r| RactorHelpers.ractor_value(r) }
      Probe.report("done" => done, "left" => Probe.sample["symbols"] - base["symbols"])
    RUBY
    expect(result["done"]).to eq(["done", "done"])
    expect(result["left"]).to be <= 2 * DynamicSymbolsSpec::KEY_CACHE_SLOTS + DynamicSymbolsSpec::SLACK
  end

  it "ext Symbols (optimized_symbols_parsing and Symbol.from_msgpack_ext) are collected too" do
    result = child_json(DynamicSymbolsSpec::CHURN + <<~'RUBY')
      fast = MessagePack::Factory.new
      fast.register_type(0, Symbol, optimized_symbols_parsing: true)
      slow = MessagePack::Factory.new
      slow.register_type(0, Symbol)
      def ext_symbols(tag, i) = Array.new(1000) { |k| [0xc7, 20, 0].pack("CCc") + "#{tag}#{i}-#{k}-".ljust(20, "y") }
      r = churn(rounds: 2, per_round: 100) do |i|
        fast_syms = fast.load("\xdd".b + [1000].pack("N") + ext_symbols("f", i).join)
        slow_syms = slow.unpacker.feed("\xdd".b + [1000].pack("N") + ext_symbols("s", i).join).read
        raise "not symbols" unless (fast_syms + slow_syms).all?(Symbol) && fast_syms.size == 1000
      end
      MessagePack.compact!
      r["compacted"] = Probe.sample
      Probe.report(r)
    RUBY
    # optimized_symbols_parsing goes through the key cache too. Each round decodes two
    # arrays of 1000 Symbols, both of which a stale stack slot may keep for a while.
    expect(symbols_left(result)).to be <= DynamicSymbolsSpec::KEY_CACHE_SLOTS + DynamicSymbolsSpec.slack(2000)
    expect(result["compacted"]["symbols"] - result["base"]["symbols"]).to be <= DynamicSymbolsSpec.slack(2000)
    expect(rss_growth_mib(result)).to be < 8
  end

  describe "in this process" do
    it "gives dynamic Symbols that are the same objects as existing ones, and the literal's Symbol for a literal" do
      key = "dyn-#{rand(1 << 60)}"
      sym = MessagePack.unpack(MessagePack.pack({ key => 1 }), symbolize_keys: true).keys.first
      expect(sym).to equal(key.to_sym)
      expect(MessagePack.unpack(MessagePack.pack({ "object_id" => 1 }), symbolize_keys: true).keys.first).to equal(:object_id)
      fast = MessagePack::Factory.new
      fast.register_type(0, Symbol, packer: :to_msgpack_ext, optimized_symbols_parsing: true)
      expect(fast.load(fast.dump(:"#{key}-ext"))).to equal(:"#{key}-ext")
      expect(fast.load(fast.dump(:inspect))).to equal(:inspect)
    end

    it "a Symbol that is still referenced survives GC and decodes to the same object later" do
      key = "kept-#{rand(1 << 60)}"
      first = MessagePack.unpack(MessagePack.pack({ key => 1 }), symbolize_keys: true).keys.first
      MessagePack.compact!
      GC.start
      again = MessagePack.unpack(MessagePack.pack({ key => 2 }), symbolize_keys: true).keys.first
      expect(again).to equal(first)
      expect(Symbol.all_symbols).to include(first)
    end
  end
end
