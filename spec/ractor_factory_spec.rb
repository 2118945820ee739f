# frozen_string_literal: true

# Ractor safety: factories (registrations with shareable callables, frozen shareable
# factories used by several Ractors, pools per Ractor, compact! of pools made in Ractors)
# and MessagePack::DefaultFactory (in a child process: its registrations cannot be
# removed).
# Shared objects, workouts and helpers: spec/support/ractor_scenarios.rb.

# The C gem is not Ractor-safe (docs/compatibility.md §16): nothing to check in the
# oracle run.
return if defined?(MSGPACK_SPEC_ORACLE) && MSGPACK_SPEC_ORACLE

require "stringio"

RSpec.describe "Ractor safety", :ractor do
  include RactorSpecHelpers

  describe "Factory" do
    it "Factory.new + register_type + dump/load inside a Ractor" do
      got = in_ractor do
        f = MessagePack::Factory.new
        f.register_type(1, RactorSpec::Point, packer: RactorSpec::PACK_POINT, unpacker: RactorSpec::UNPACK_POINT)
        f.register_type(2, RactorSpec::SymbolExt)
        f.register_type(0, Symbol)
        obj = [RactorSpec::Point.new(3, -4), RactorSpec::SymbolExt.new(9), :sym]
        data = f.dump(obj)
        [data, f.load(data), f.registered_types.map { |t| t[:type] }, f.type_registered?(RactorSpec::Point),
         f.unpacker.feed(data).read, f.packer.write(obj).full_pack == data]
      end
      obj = [RactorSpec::Point.new(3, -4), RactorSpec::SymbolExt.new(9), :sym]
      expect(got[0]).to eq(bin("93 d7 01 00 00 00 03 ff ff ff fc d6 02 00 00 00 09 c7 03 00 73 79 6d"))
      expect(got[1]).to eq(obj)
      expect(got[2]).to eq([0, 1, 2])
      expect(got[3]).to be(true)
      expect(got[4]).to eq(obj)
      expect(got[5]).to be(true)
    end

    it "Timestamp ext and Time round trips inside a Ractor" do
      got = in_ractor do
        f = MessagePack::Factory.new
        f.register_type(MessagePack::Timestamp::TYPE, MessagePack::Timestamp)
        stamps = [[1, 0], [2**32 - 1, 0], [2**32, 5], [2**34, 1], [-1, 999_999_999]]
        ts = stamps.map { |s, n| f.dump(MessagePack::Timestamp.new(s, n)) }
        ts_back = ts.map { |d| f.load(d) }.map { |t| [t.sec, t.nsec] }
        tf = MessagePack::Factory.new
        tf.register_type(-1, Time, packer: MessagePack::Time::Packer, unpacker: MessagePack::Time::Unpacker)
        times = [Time.at(1_700_000_000, 123_456_789, :nanosecond), Time.at(0), Time.at(-5, 1, :nanosecond),
                 Time.at(2**35, 7, :nanosecond)]
        td = times.map { |t| tf.dump(t) }
        back = td.map { |d| tf.load(d) }
        [ts.map(&:bytesize), ts_back == stamps, td.map(&:bytesize), back == times, back.map(&:nsec)]
      end
      expect(got).to eq([[6, 6, 10, 15, 15], true, [10, 6, 15, 15], true, [123_456_789, 0, 1, 7]])
    end

    it "Bigint ext (msgpack/bigint) round trips inside a Ractor" do
      values = [2**64, -(2**64) - 1, 2**200 + 12_345, -(2**130)]
      main = RactorSpec.bigint_factory
      got = in_ractor(values) do |vals|
        f = RactorSpec.bigint_factory # Method objects made in this Ractor
        data = vals.map { |v| f.dump(v) }
        [data, data.map { |d| f.load(d) }, f.dump(2**63), (MessagePack.pack(2**64) rescue $!.class)]
      end
      expect(got[0]).to eq(values.map { |v| main.dump(v) })
      expect(got[1]).to eq(values)
      expect(got[2]).to eq(bin("cf 80 00 00 00 00 00 00 00"))
      expect(got[3]).to eq(RangeError)
    end

    it "a frozen factory with shareable callables is shareable and used by several Ractors at once" do
      f = RactorSpec.shareable_factory
      expect(f).to be_frozen
      expect(Ractor.shareable?(f)).to be(true)
      expect(Ractor.make_shareable(f)).to equal(f)
      ractors = 3.times.map do |i|
        Ractor.new(f, i) do |fac, k|
          obj = [RactorSpec::Point.new(k, -k), RactorSpec::SymbolExt.new(k), Time.at(k, 5, :nanosecond), 2**(70 + k)]
          ok = 0
          300.times do
            ok += 1 if fac.load(fac.dump(obj)) == obj && fac.unpacker.feed(fac.packer.write(obj).to_s).read == obj
          end
          [k, ok, Ractor.shareable?(fac), fac.frozen?, (fac.register_type(9, Symbol) rescue $!.class)]
        end
      end
      expect(ractors.map { |r| ractor_value(r) }.sort).to eq([0, 1, 2].map { |k| [k, 300, true, true, FrozenError] })
    end

    it "Ractor.make_shareable fails cleanly for a frozen factory holding a non-shareable lambda" do
      f = MessagePack::Factory.new
      f.register_type(1, RactorSpec::Point, packer: ->(pt) { [pt.x, pt.y].pack("l>l>") },
                                            unpacker: RactorSpec::UNPACK_POINT)
      f.freeze
      expect(f).to be_frozen
      expect(Ractor.shareable?(f)).to be(false)
      expect { Ractor.make_shareable(f) }.to raise_error(Ractor::Error)
      # Ruby 3.1 lets any T_DATA object be *copied* to another Ractor (ractor.c's
      # obj_refer_only_shareables_p_i increments the pointer, not the count), so the
      # copy may arrive holding the main Ractor's lambda: it must refuse to call it.
      got = begin
        in_ractor(f) do |fac|
          [(fac.dump(RactorSpec::Point.new(1, 2)) rescue [$!.class, $!.message]), fac.load("\xD7\x01\x00\x00\x00\x01\x00\x00\x00\x02".b)]
        end
      rescue Ractor::Error => e
        e.class
      end
      if got == Ractor::Error
        expect(got).to eq(Ractor::Error) # a Ruby that refuses the copy
      else
        expect(got[0][0]).to eq(Ractor::IsolationError)
        expect(got[0][1]).to match(/ext type 1\b/)
        expect(got[1]).to eq(RactorSpec::Point.new(1, 2)) # the shareable unpacker still works
      end
      # still fully usable in the main Ractor
      expect(f.load(f.dump(RactorSpec::Point.new(1, 2)))).to eq(RactorSpec::Point.new(1, 2))
    end

    it "pools of a shareable factory are created and used per Ractor" do
      f = RactorSpec.shareable_factory
      ractors = 2.times.map do |i|
        Ractor.new(f, i) do |fac, k|
          pool = fac.pool(2, symbolize_keys: true)
          rec = RactorSpec::RECORD.merge("id" => k, "pt" => RactorSpec::Point.new(k, k))
          ok = 0
          200.times do
            data = pool.dump(rec)
            back = pool.load(data)
            ok += 1 if back[:id] == k && back[:pt] == RactorSpec::Point.new(k, k) && back[:tags] == %w[a b c]
          end
          via_blocks = pool.packer { |pk| pk.write([1, 2]).to_s }
          via_blocks = pool.unpacker { |uk| uk.feed(via_blocks).read }
          frozen_member = pool.packer { |pk| (pk.register_type(5, Symbol) { "" } rescue $!.class) }
          [k, ok, via_blocks, frozen_member]
        end
      end
      expect(ractors.map { |r| ractor_value(r) }.sort_by(&:first)).to eq([[0, 200, [1, 2], FrozenError], [1, 200, [1, 2], FrozenError]])
    end
  end

  # Pools remember their factory for Factory#compact!. Kept in a Ruby
  # ObjectSpace::WeakMap this crashed (or hung at exit): on Ruby 3.1 WeakMaps add
  # finalizers to a process-wide table that Ractors update without a lock.
  it "Ractors creating pools at once, then compacting, run and exit cleanly" do
    script = <<~RUBY
      require "msgpack"
      f = MessagePack::Factory.new.freeze
      rs = 4.times.map do |i|
        Ractor.new(f, i) do |fac, k|
          n = 0
          2000.times do
            pool = fac.pool(1)
            n += 1 if pool.load(pool.dump([k, "x"])) == [k, "x"]
          end
          [n, fac.compact!.objects_visited >= 2]
        end
      end
      p rs.map { |r| RactorHelpers.ractor_value(r) }
    RUBY
    stdout, stderr, status = run_isolated_ruby("Warning[:experimental] = false\n" + RactorHelpers::REQUIRE_LINE + script)
    expect(status.success?).to be(true), "child failed (#{status.inspect}):\n#{stderr[0, 2000]}"
    expect(stdout.lines.last.strip).to eq("[[2000, true], [2000, true], [2000, true], [2000, true]]")
  end

  # DefaultFactory is global and registrations on it cannot be removed, so these
  # scenarios run in one child process (other specs decode arbitrary ext types
  # with MessagePack.unpack and must not meet ours).
  describe "DefaultFactory" do
    before(:context) do
      stdout, stderr, status = run_isolated_ruby(RactorHelpers::REQUIRE_LINE + RactorSpec::DEFAULT_FACTORY_SCRIPT)
      raise "child failed (#{status.inspect}):\n#{stderr}" unless status.success?

      @df = Marshal.load(stdout.lines.last.strip.unpack1("m0")) # rubocop:disable Security/MarshalLoad
    end

    it "is shareable while unfrozen and readable from a Ractor" do
      expect(@df[:main]).to eq([false, true])
      # non-shareable callables show as nil outside the main Ractor
      expect(@df[:seen]).to eq([false, true, [[100, "DF::ShareableExt", true, true],
                                              [101, "DF::SymbolExt", true, true],
                                              [102, "DF::LocalExt", false, false]]])
    end

    it "types registered in main with a shareable proc or a method name work inside a Ractor" do
      expect(@df[:shared]).to eq(["93 d6 64 00 00 00 07 d6 65 00 00 00 08 81 a1 6b d6 65 00 00 00 09", true, true])
    end

    it "a non-shareable lambda raises Ractor::IsolationError naming the type inside a Ractor, and works in main" do
      pack_err, unpack_err, size = @df[:local]
      expect(pack_err).to match(/IsolationError: .*ext type 102\b/).and match(/DF::LocalExt/)
      expect(unpack_err).to match(/IsolationError: .*ext type 102\b/)
      expect(size).to eq(6)
      expect(@df[:local_in_main]).to eq(["d6 66 00 00 00 01", true])
    end

    it "registering from a Ractor needs shareable callables; the registration is seen in main" do
      expect(@df[:from_ractor][0]).to match(/IsolationError: .*ext type 103\b/)
      expect(@df[:from_ractor][1]).to eq(4)
      expect(@df[:from_ractor_in_main]).to eq([true, 5])
    end

    it "packers and unpackers made from it inside a Ractor do not hand out non-shareable procs" do
      expect(@df[:leak]).to eq([true, true])
    end

    # Runs in a child process: with the bug it crashes ([BUG] try to mark T_NONE object)
    # or calls a stale object; it needs a few seconds of registrations + GCs to show.

    it "Ractors keep working while main re-registers types and runs compacting GCs" do
      stdout, stderr, status = run_isolated_ruby(RactorHelpers::REQUIRE_LINE + RactorSpec::REGISTER_WHILE_USED)
      expect([status.success?, stdout.strip]).to eq([true, "[{}, {}]"]), stderr.lines.first(3).join
    end
  end
end
