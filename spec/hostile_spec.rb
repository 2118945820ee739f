# frozen_string_literal: true

# Hostile input: what an attacker-controlled byte string can and cannot do to a decoder.
#
# Incidents in peer libraries this file guards against (docs/compatibility.md §15):
#   * a 5-byte header claiming 2^32-1 elements makes the decoder allocate gigabytes;
#   * nested array16(65535) headers turn 72 KB of input into 1.4 GB of preallocation;
#   * a map32 count near 2^32 overflows count*2 (the C gem reads df 80 00 00 01 as 1 entry);
#   * deep nesting overflows the native stack;
#   * an unpacker left broken after an error misbehaves on the next call;
#   * an ext callback that uses the unpacker (or packer) that called it.
#
# Limits (msgpack-rs options; the C gem has none of them, so those examples are skipped in
# the oracle run): max_depth (default 128, like the C gem; exceeding it raises
# MessagePack::StackError), max_array_len, max_map_len, max_str_len, max_bin_len,
# max_ext_len (default unlimited). A length above its limit raises MalformedFormatError
# (an UnpackError) whose message names the option, as soon as the header is read.
#
# Memory is measured in a child Ruby (VmHWM from /proc/self/status, reset through
# /proc/self/clear_refs just before the hostile call), so other examples don't pollute it.
#
# Decisions documented here:
#   * nanoseconds >= 10^9 in a timestamp are not rejected (the C gem doesn't check either):
#     Timestamp.from_msgpack_ext keeps the raw nsec, MessagePack::Time::Unpacker lets
#     Time.at carry the excess into seconds;
#   * after any error inside an object (MalformedFormatError for c1, StackError, a
#     length-limit error, an exception from an ext proc or a key's #hash, EncodingError) the
#     unpacker drops the object in progress and discards the rest of it as it arrives: the
#     next read returns the next top-level object, never a part of the failed one; after an
#     IO error (or EOF) it keeps the partial object and resumes; `reset` always gives a clean
#     unpacker (docs/compatibility.md).

require "json"
require "stringio"

RSpec.describe "Hostile input" do
  rs_only = MSGPACK_SPEC_ORACLE ? "msgpack-rs only (the C gem has no decoder limits)" : false

  def nested(count, header, leaf = "01")
    bin(header) * count + bin(leaf)
  end

  # Ruby code run in a child that loads the same msgpack; `measure { ... }` resets the
  # high-water mark, runs the block and returns its outcome, the peak RSS growth (KiB) and
  # the time taken.
  HOSTILE_CHILD_PRELUDE = <<~'RUBY'
    require "msgpack"
    require "json"
    require "stringio"
    def bin(hex) = [hex.delete(" -")].pack("H*").b
    def hwm_kib = File.read("/proc/self/status")[/^VmHWM:\s+(\d+)/, 1].to_i
    def measure
      GC.start
      reset = begin
        File.write("/proc/self/clear_refs", "5") # high-water mark := current RSS
        true
      rescue SystemCallError
        false # the mark then includes the setup (small here); see measure_each
      end
      before = hwm_kib
      t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      outcome = begin
        value = yield
        { "value" => value.class.name }
      rescue Exception => e
        { "error" => e.class.name, "message" => e.message }
      end
      outcome.merge("growth_kib" => hwm_kib - before, "hwm_reset" => reset,
                    "seconds" => Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0)
    end
    def report(result) = puts(JSON.generate(result))
  RUBY

  # Runs `code` after HOSTILE_CHILD_PRELUDE; returns the JSON object the child reported.
  def child_report(code)
    out, err, status = run_isolated_ruby(HOSTILE_CHILD_PRELUDE + code)
    expect(status).to be_success, "child failed (#{status.inspect}):\n#{err[0, 2000]}"
    JSON.parse(out.lines.last)
  end

  # Measures each snippet (a Ruby expression; `setup` runs first) in a child: all in one
  # child when the high-water mark can be reset between them, else one child each (an
  # earlier, bigger peak would otherwise hide a later one). Returns {name => report}.
  def measure_each(setup, snippets)
    batch = snippets.map { |name, code| "$results[#{name.inspect}] = measure { #{code} }" }.join("\n")
    results = child_report("#{setup}\n$results = {}\n#{batch}\nreport($results)\n")
    return results if results.each_value.all? { |v| v["hwm_reset"] }

    snippets.to_h { |name, code| [name, child_report("#{setup}\nreport(measure { #{code} })\n")] }
  end

  # Runs `code` in a child and returns [stdout, stderr, status] (for code that may crash).
  def child_run(code)
    run_isolated_ruby(HOSTILE_CHILD_PRELUDE + code)
  end

  def expect_no_crash(status, err)
    expect(err).not_to include("[BUG]")
    expect(status.signaled?).to be(false), "child killed by signal #{status.termsig}:\n#{err[0, 1500]}"
  end

  HOSTILE_ONE_MIB_KIB = 1024

  # ------------------------------------------------------------------ limits

  describe "decoder limits" do
    describe "max_depth" do
      entry_points = {
        "MessagePack.unpack" => ->(data, opts) { MessagePack.unpack(data, opts) },
        "MessagePack.load" => ->(data, opts) { MessagePack.load(data, opts) },
        "Unpacker#read" => lambda { |data, opts|
          u = MessagePack::Unpacker.new(opts)
          u.feed(data)
          u.read
        },
        "Unpacker.new(io, options)#read" => ->(data, opts) { MessagePack::Unpacker.new(StringIO.new(data), opts).read },
        "Unpacker#skip" => lambda { |data, opts|
          u = MessagePack::Unpacker.new(opts)
          u.feed(data)
          u.skip
          :skipped
        },
        "Unpacker#feed_each" => ->(data, opts) { MessagePack::Unpacker.new(opts).feed_each(data).to_a.fetch(0) },
        "Factory#load" => ->(data, opts) { MessagePack::Factory.new.load(data, opts) },
        "Factory#unpacker" => lambda { |data, opts|
          u = MessagePack::Factory.new.unpacker(opts)
          u.feed(data)
          u.read
        },
        "Pool#load" => ->(data, opts) { MessagePack::Factory.new.pool(1, **opts).load(data) },
      }

      entry_points.each do |name, decode|
        it "defaults to 128 nested non-empty containers through #{name}" do
          skip "no Factory#pool in this C gem" if name == "Pool#load" && !MessagePack::Factory.method_defined?(:pool)

          expect(decode.call(nested(128, "91"), {})).not_to be_nil
          expect(decode.call(nested(128, "81 01"), {})).not_to be_nil
          expect { decode.call(nested(129, "91"), {}) }.to raise_error(MessagePack::StackError, "stack level too deep")
          expect { decode.call(nested(129, "81 01"), {}) }.to raise_error(MessagePack::StackError)
        end

        it "honours max_depth: 3 through #{name}", skip: rs_only do
          expect(decode.call(nested(3, "91"), max_depth: 3)).not_to be_nil
          expect { decode.call(nested(4, "91"), max_depth: 3) }.to raise_error(MessagePack::StackError)
        end
      end

      it "does not count empty containers" do
        expect(MessagePack.unpack(nested(128, "91", "90"))).to be_a(Array)
        expect(MessagePack.unpack(nested(128, "91", "80"))).to be_a(Array)
      end

      it "counts map keys as well as values (a container as a key is one level deeper)" do
        key_chain = ->(n) { bin("81") * n + bin("01") + bin("01") * n } # {{{1=>1}=>1}=>1} ...
        expect(MessagePack.unpack(key_chain.call(128))).to be_a(Hash)
        expect { MessagePack.unpack(key_chain.call(129)) }.to raise_error(MessagePack::StackError)
      end

      it "allows deeper nesting when raised (the decoder does not recurse on the native stack)", skip: rs_only do
        obj = MessagePack.unpack(nested(100_000, "91"), max_depth: 100_000)
        depth = 0
        while obj.is_a?(Array)
          obj = obj[0]
          depth += 1
        end
        expect([depth, obj]).to eq([100_000, 1])
      end

      it "max_depth: 0 accepts scalars and empty containers only", skip: rs_only do
        expect(MessagePack.unpack(bin("01"), max_depth: 0)).to eq(1)
        expect(MessagePack.unpack(bin("90"), max_depth: 0)).to eq([])
        expect { MessagePack.unpack(bin("91 01"), max_depth: 0) }.to raise_error(MessagePack::StackError)
      end
    end

    describe "length limits", skip: rs_only do
      # [option, encodings of a 3-element/3-byte object in every format, same with 2]
      cases = {
        max_array_len: [%w[93010203 dc0003010203 dd00000003010203], %w[920102 dc00020102]],
        max_map_len: [%w[83010102020303 de0003010102020303 df00000003010102020303], %w[8201010202]],
        max_str_len: [%w[a3616263 d903616263 da0003616263 db00000003616263], %w[a26162 d9026162]],
        max_bin_len: [%w[c403616263 c50003616263 c600000003616263], %w[c4026162]],
        max_ext_len: [%w[c70301616263 c8000301616263 c90000000301616263], %w[d5016162 c702016162]],
      }

      cases.each do |option, (too_long, ok)|
        it "#{option}: 2 accepts length 2 and rejects length 3 in every format with MalformedFormatError" do
          opts = { option => 2, allow_unknown_ext: true }
          ok.each { |h| expect { MessagePack.unpack(bin(h), opts) }.not_to raise_error }
          too_long.each do |h|
            expect { MessagePack.unpack(bin(h), opts) }
              .to raise_error(MessagePack::MalformedFormatError, /#{option}/)
            expect { MessagePack.unpack(bin(h), opts) }.to raise_error(MessagePack::UnpackError)
          end
        end

        it "#{option} is checked on the header, before the payload arrives" do
          opts = { option => 2, allow_unknown_ext: true }
          too_long.each do |h|
            header_only = bin(h)[0, bin(h).bytesize - 3] # drop the 3-byte payload / 3 elements
            header_only = bin(h)[0, bin(h).bytesize - 6] if option == :max_map_len
            u = MessagePack::Unpacker.new(opts)
            u.feed(header_only)
            expect { u.read }.to raise_error(MessagePack::MalformedFormatError, /#{option}/)
          end
        end
      end

      it "the message names the option, the declared length and the limit" do
        expect { MessagePack.unpack(bin("dd ff ff ff ff"), max_array_len: 10) }
          .to raise_error(MessagePack::MalformedFormatError, "length 4294967295 exceeds max_array_len (10)")
      end

      it "applies to map keys, nested values and ext payloads whatever is registered" do
        expect { MessagePack.unpack(bin("81 a3 616263 01"), max_str_len: 2) }
          .to raise_error(MessagePack::MalformedFormatError, /max_str_len/)
        expect { MessagePack.unpack(bin("91 91 93 01 02 03"), max_array_len: 2) }
          .to raise_error(MessagePack::MalformedFormatError, /max_array_len/)
        f = MessagePack::Factory.new
        f.register_type(1, Object, unpacker: ->(data) { data })
        expect(f.load(bin("d5 01 6162"), max_ext_len: 2)).to eq("ab")
        expect { f.load(bin("d6 01 61626364"), max_ext_len: 2) }.to raise_error(MessagePack::MalformedFormatError, /max_ext_len/)
        f.register_type(-1, Time, packer: MessagePack::Time::Packer, unpacker: MessagePack::Time::Unpacker)
        expect { f.load(MessagePack::Timestamp.to_msgpack_ext(1, 0).then { |p| bin("d6 ff") + p }, max_ext_len: 3) }
          .to raise_error(MessagePack::MalformedFormatError, /max_ext_len/)
      end

      it "0 allows only empty values" do
        expect(MessagePack.unpack(bin("90"), max_array_len: 0)).to eq([])
        expect(MessagePack.unpack(bin("80"), max_map_len: 0)).to eq({})
        expect(MessagePack.unpack(bin("a0"), max_str_len: 0)).to eq("")
        expect(MessagePack.unpack(bin("c4 00"), max_bin_len: 0)).to eq("".b)
        expect { MessagePack.unpack(bin("a1 61"), max_str_len: 0) }.to raise_error(MessagePack::MalformedFormatError)
      end

      it "is accepted by every constructor and loader" do
        data = bin("93 01 02 03")
        opts = { max_array_len: 2 }
        f = MessagePack::Factory.new
        loaders = [
          -> { MessagePack.unpack(data, opts) },
          -> { MessagePack.load(data, opts) },
          -> { MessagePack::Unpacker.new(opts).feed(data).read },
          -> { MessagePack::Unpacker.new(opts).feed(data).skip },
          -> { MessagePack::Unpacker.new(opts).feed_each(data) { nil } },
          -> { MessagePack::Unpacker.new(StringIO.new(data), opts).read },
          -> { f.load(data, opts) },
          -> { f.unpacker(opts).feed(data).read },
          -> { f.unpacker(StringIO.new(data), opts).read },
          -> { f.pool(1, **opts).load(data) },
          -> { MessagePack::DefaultFactory.load(data, opts) },
        ]
        loaders.each_with_index do |load, i|
          expect { load.call }.to raise_error(MessagePack::MalformedFormatError, /max_array_len/), "loader #{i}"
        end
      end

      it "is unlimited by default (memory is only committed for bytes that arrived)" do
        big = "x" * 3_000_000
        expect(MessagePack.unpack(MessagePack.pack(big)).bytesize).to eq(3_000_000)
        expect(MessagePack.unpack(MessagePack.pack(Array.new(100_000, 1))).size).to eq(100_000)
        expect(MessagePack.unpack(MessagePack.pack((1..70_000).to_h { |i| [i, i] })).size).to eq(70_000)
        expect(MessagePack.unpack(bin("c9 00 01 00 00 05") + "z".b * 65_536, allow_unknown_ext: true).payload.bytesize)
          .to eq(65_536)
      end

      it "nil means the default; other option values are validated" do
        expect(MessagePack.unpack(nested(128, "91"), max_depth: nil)).to be_a(Array)
        expect(MessagePack.unpack(bin("93 01 02 03"), max_array_len: nil)).to eq([1, 2, 3])
        expect { MessagePack.unpack(bin("90"), max_array_len: -1) }.to raise_error(RangeError)
        expect { MessagePack.unpack(bin("90"), max_depth: "3") }.to raise_error(TypeError)
        # limits above 2^32-1 mean "no limit" for lengths (a length never exceeds 2^32-1)
        expect(MessagePack.unpack(bin("93 01 02 03"), max_array_len: 2**40)).to eq([1, 2, 3])
      end

      it "keeps the limits across reset" do
        u = MessagePack::Unpacker.new(max_str_len: 1)
        u.feed(bin("a1 61"))
        expect(u.read).to eq("a")
        u.reset
        u.feed(bin("a2 6162"))
        expect { u.read }.to raise_error(MessagePack::MalformedFormatError)
      end
    end
  end

  # ------------------------------------------------------------------ lying headers

  describe "length headers that lie" do
    it "(the memory probe itself sees a 16 MiB allocation and a raised exception)" do
      r = measure_each("", "alloc" => "'x' * (16 << 20)", "raise" => "raise IOError, 'x'")
      expect(r["alloc"]["growth_kib"]).to be >= 16 * HOSTILE_ONE_MIB_KIB
      expect(r["alloc"]["value"]).to eq("String")
      expect(r["raise"]).to include("error" => "IOError", "message" => "x")
    end

    decode_ways = {
      "MessagePack.unpack" => "MessagePack.unpack(data, OPTS)",
      "Unpacker#feed + read" => "u = MessagePack::Unpacker.new(OPTS); u.feed(data); u.read",
      "Unpacker fed byte by byte" =>
        "u = MessagePack::Unpacker.new(OPTS); r = nil; data.each_char { |c| u.feed(c); begin; r = [u.read]; " \
        "rescue EOFError; end }; r ? r[0] : raise(EOFError)",
      "Unpacker reading an IO" => "MessagePack::Unpacker.new(StringIO.new(data), OPTS).read",
    }

    {
      "array32" => "dd ff ff ff ff",
      "map32" => "df ff ff ff ff",
      "str32" => "db ff ff ff ff",
      "bin32" => "c6 ff ff ff ff",
      "ext32" => "c9 ff ff ff ff 01",
    }.each do |name, header|
      it "#{name} claiming 2^32-1 with no data: EOFError, quickly, peak RSS growth < 1 MiB", :since_1_7 do
        measure_each("data = bin(#{header.inspect}); OPTS = {}", decode_ways).each do |way, r|
          expect(r["error"]).to eq("EOFError"), "#{way}: #{r.inspect}"
          expect(r["growth_kib"]).to be < HOSTILE_ONE_MIB_KIB, "#{way}: #{r.inspect}"
          expect(r["seconds"]).to be < 1.0, "#{way}: #{r.inspect}"
        end
      end
    end

    it "array32 claiming 2^32-1 followed by 1000 real elements only holds what arrived", :since_1_7 do
      r = child_report(<<~'RUBY')
        data = bin("dd ff ff ff ff") + "\xc0".b * 1000
        report(measure { MessagePack.unpack(data) })
      RUBY
      expect(r["error"]).to eq("EOFError")
      expect(r["growth_kib"]).to be < HOSTILE_ONE_MIB_KIB
    end

    it "str32 claiming 4 GiB fed 1 MiB in 1 KiB chunks commits memory only for the bytes that arrived", skip: rs_only do
      r = child_report(<<~'RUBY')
        u = MessagePack::Unpacker.new
        chunk = "a".b * 1024
        report(measure {
          u.feed(bin("db ff ff ff ff"))
          1024.times do
            u.feed(chunk)
            begin
              u.read
            rescue EOFError
            end
          end
          raise EOFError
        })
      RUBY
      expect(r["error"]).to eq("EOFError")
      expect(r["growth_kib"]).to be < 8 * HOSTILE_ONE_MIB_KIB # 1 MiB arrived; a join may copy it once or twice
      expect(r["seconds"]).to be < 2.0 # no quadratic re-copying
    end

    it "50,000 nested array16(65535) headers (150 KB) raise StackError quickly with peak RSS growth < 1 MiB" do
      r = child_report(<<~'RUBY')
        data = bin("dc ff ff") * 50_000
        report(measure { MessagePack.unpack(data) })
      RUBY
      expect(r["error"]).to eq("MessagePack::StackError")
      expect(r["growth_kib"]).to be < HOSTILE_ONE_MIB_KIB
      expect(r["seconds"]).to be < 1.0
    end

    it "the same 50,000 headers with max_depth: 100_000 cost memory per container, not per declared element",
       skip: rs_only do
      ways = {}
      %w[dc-ff-ff dd-ff-ff-ff-ff de-ff-ff df-ff-ff-ff-ff].each do |header|
        ways["#{header} unpack"] = "MessagePack.unpack(bin(#{header.inspect}) * 50_000, max_depth: 100_000)"
        ways["#{header} feed"] =
          "MessagePack::Unpacker.new(max_depth: 100_000).feed(bin(#{header.inspect}) * 50_000).read"
      end
      measure_each("", ways).each do |way, r|
        # 50,000 open containers (Ruby objects + decoder frames) take a few MiB; the
        # declared counts (50,000 x 65535 or 2^32-1 elements) would take gigabytes.
        expect(r["error"]).to eq("EOFError"), "#{way}: #{r.inspect}"
        expect(r["growth_kib"]).to be < 32 * HOSTILE_ONE_MIB_KIB, "#{way}: #{r.inspect}"
        expect(r["seconds"]).to be < 2.0, "#{way}: #{r.inspect}"
      end
    end

    describe "map32 counts whose doubling overflows 32 bits", skip: rs_only do
      it "df 80 00 00 01 followed by one pair is incomplete (EOFError), not a 1-entry map" do
        # count*2 in 32 bits would be 2: the C gem returns {1=>2} here.
        expect { MessagePack.unpack(bin("df 80 00 00 01 01 02")) }.to raise_error(EOFError)
        u = MessagePack::Unpacker.new
        u.feed(bin("df 80 00 00 01 01 02 03 04"))
        expect { u.read }.to raise_error(EOFError)
        expect { MessagePack.unpack(bin("df ff ff ff ff 01 02")) }.to raise_error(EOFError)
        expect { MessagePack.unpack(bin("df 80 00 00 00 01 02")) }.to raise_error(EOFError)
      end

      it "the limit check sees the real count" do
        expect { MessagePack.unpack(bin("df 80 00 00 01 01 02"), max_map_len: 2**31) }
          .to raise_error(MessagePack::MalformedFormatError, "length 2147483649 exceeds max_map_len (2147483648)")
      end

      it "nested overflowing map counts stay bounded in memory" do
        r = child_report(<<~'RUBY')
          data = bin("df 80 00 00 01") * 100 + "\x01".b * 10_000
          report(measure { MessagePack.unpack(data) })
        RUBY
        expect(r["error"]).to eq("EOFError")
        expect(r["growth_kib"]).to be < HOSTILE_ONE_MIB_KIB
      end
    end
  end

  # ------------------------------------------------------------------ deep nesting

  describe "deep nesting" do
    it "100,000 nested one-element arrays raise StackError (no crash) through every reader" do
      data = nested(100_000, "91")
      expect { MessagePack.unpack(data) }.to raise_error(MessagePack::StackError)
      u = MessagePack::Unpacker.new
      u.feed(data)
      expect { u.read }.to raise_error(MessagePack::StackError)
      u = MessagePack::Unpacker.new
      u.feed(data)
      expect { u.skip }.to raise_error(MessagePack::StackError)
      expect { MessagePack::Unpacker.new.feed_each(data) { nil } }.to raise_error(MessagePack::StackError)
      expect { MessagePack::Unpacker.new(StringIO.new(data)).each { nil } }.to raise_error(MessagePack::StackError)
    end

    it "100,000 nested maps, in key or in value position, raise StackError" do
      expect { MessagePack.unpack(nested(100_000, "81")) }.to raise_error(MessagePack::StackError)
      expect { MessagePack.unpack(nested(100_000, "81 01")) }.to raise_error(MessagePack::StackError)
      expect { MessagePack.unpack(nested(100_000, "dc 00 01")) }.to raise_error(MessagePack::StackError)
      expect { MessagePack.unpack(nested(100_000, "df 00 00 00 01 c0")) }.to raise_error(MessagePack::StackError)
    end

    it "128 levels decode and 129 raise, also when the data arrives byte by byte" do
      [[128, nil], [129, MessagePack::StackError]].each do |depth, error|
        u = MessagePack::Unpacker.new
        got = nil
        raised = nil
        nested(depth, "91").each_char do |c|
          u.feed(c)
          begin
            got = u.read
          rescue EOFError
            nil
          rescue MessagePack::StackError => e
            raised = e
            break
          end
        end
        if error
          expect(raised).to be_a(error)
        else
          expect(raised).to be_nil
          expect(got.flatten).to eq([1])
        end
      end
    end

    it "packs 100,000 nested Arrays and Hashes as the C gem does (no recursion on the machine stack)" do
      a = []
      cur = a
      100_000.times do
        n = []
        cur << n
        cur = n
      end
      expect(MessagePack.pack(a)).to eq(("\x91" * 100_000 + "\x90").b)
      h = {}
      cur = h
      100_000.times do
        n = {}
        cur["k"] = n
        cur = n
      end
      expect(MessagePack.pack(h)).to eq(("\x81\xa1k" * 100_000 + "\x80").b)
    end

    it "stops at the packer's max_depth (default 1,000,000) with SystemStackError, as the C gem does for cycles",
       skip: rs_only do
      a = []
      a << a
      expect { MessagePack.pack(a) }.to raise_error(SystemStackError)
      nested = [[[[1]]]]
      expect { MessagePack.pack(nested, max_depth: 3) }.to raise_error(SystemStackError)
      expect(MessagePack.pack(nested, max_depth: 4)).to eq(bin("91 91 91 91 01"))
      expect { MessagePack::Packer.new(max_depth: 3).write(nested) }.to raise_error(SystemStackError)
      deep = []
      cur = deep
      200.times { cur << (cur = []) }
      expect { MessagePack.pack(deep, max_depth: 150) }.to raise_error(SystemStackError)
      expect(MessagePack.pack(deep, max_depth: 201).bytesize).to eq(201)
    end

    context "with a recursive ext type (its proc reads the nested object from the unpacker)", :since_1_7 do
      let(:box_setup) do
        <<~'RUBY'
          Box = Struct.new(:v)
          F = MessagePack::Factory.new
          F.register_type(1, Box, packer: ->(x, pk) { pk.write(x.v) },
                                  unpacker: ->(u) { Box.new(u.read) }, recursive: true)
          def boxes(n) = "\xc7\x00\x01".b * n + "\x01".b
        RUBY
      end

      it "decodes nested boxes within the limit" do
        r = child_report(box_setup + <<~'RUBY')
          x = F.load(boxes(50))
          d = 0
          (d += 1; x = x.v) while x.is_a?(Box)
          report({ "depth" => d, "leaf" => x })
        RUBY
        expect(r).to eq("depth" => 50, "leaf" => 1)
      end

      it "100,000 nested recursive ext headers raise StackError, not SystemStackError or a crash" do
                "budget from the configured limit), so hostile input recurses until SystemStackError"
        out, err, status = child_run(box_setup + <<~'RUBY')
          report(measure { F.load(boxes(100_000)) })
        RUBY
        expect_no_crash(status, err)
        expect(JSON.parse(out.lines.last)["error"]).to eq("MessagePack::StackError")
      end

      it "a recursive ext frame counts towards max_depth", skip: rs_only do
        r = child_report(box_setup + <<~'RUBY')
          report([129, 4].map { |n| (F.load(boxes(n), max_depth: n == 4 ? 3 : 128); "ok") rescue $!.class.name })
        RUBY
        expect(r).to eq(%w[MessagePack::StackError MessagePack::StackError])
      end
    end
  end

  # ------------------------------------------------------------------ malformed input

  describe "malformed input" do
    it "c1 raises MalformedFormatError \"invalid byte\" wherever it appears" do
      %w[c1 91c1 9201c1 81c101 8101c1 dc0002c1c1].each do |h|
        expect { MessagePack.unpack(bin(h)) }.to raise_error(MessagePack::MalformedFormatError, "invalid byte"), h
        u = MessagePack::Unpacker.new
        u.feed(bin(h))
        expect { u.read }.to raise_error(MessagePack::MalformedFormatError), h
        u = MessagePack::Unpacker.new
        u.feed(bin(h))
        expect { u.skip }.to raise_error(MessagePack::MalformedFormatError), h
      end
    end

    it "extra bytes after a complete object raise MalformedFormatError in MessagePack.unpack and Factory#load" do
      expect { MessagePack.unpack(bin("01 02")) }
        .to raise_error(MessagePack::MalformedFormatError, "1 extra bytes after the deserialized object")
      expect { MessagePack.unpack(bin("91 01 c1 c1 c1")) }
        .to raise_error(MessagePack::MalformedFormatError, "3 extra bytes after the deserialized object")
      expect { MessagePack::Factory.new.load(bin("c0 c0")) }.to raise_error(MessagePack::MalformedFormatError)
      expect { MessagePack::Unpacker.new.feed(bin("c0 c0")).full_unpack }
        .to raise_error(MessagePack::MalformedFormatError)
    end

    it "empty input raises EOFError" do
      expect { MessagePack.unpack("") }.to raise_error(EOFError)
      expect { MessagePack.unpack("".b, symbolize_keys: true) }.to raise_error(EOFError)
      expect { MessagePack::Factory.new.load("") }.to raise_error(EOFError)
      expect { MessagePack::Unpacker.new.read }.to raise_error(EOFError)
      expect { MessagePack::Unpacker.new.skip }.to raise_error(EOFError)
      expect { MessagePack::Unpacker.new(StringIO.new("")).read }.to raise_error(EOFError)
      expect(MessagePack::Unpacker.new.feed_each("") { raise "no object expected" }).to be_nil
    end

    # One message per format (and some nesting), each complete and alone.
    HOSTILE_FORMAT_SAMPLES = %w[
      c0 c2 c3 00 7f e0 ff
      cc80 cd0100 ce00010000 cf0000000100000000
      d080 d1ff7f d2ff7fffff d3ff7fffffffffffff
      ca3fc00000 cb3ff8000000000000
      a0 a3616263 d903616263 da0003616263 db00000003616263
      c40161 c5000161 c60000000161
      d40161 d5016162 d60161626364 d7016162636465666768 d801000102030405060708090a0b0c0d0e0f
      c70301616263 c8000301616263 c90000000301616263
      90 93010203 dc0003010203 dd00000003010203
      80 82a16101a16202 de0001a16101 df00000001a16101
      9291a161c0 81a16292c0c3
      d6ffffffffff d7ff0000000400000000 c70cff000000010000000000000001
    ].freeze

    it "every truncated prefix of a valid message raises EOFError, and feeding the rest resumes" do
      samples = HOSTILE_FORMAT_SAMPLES.map { |h| bin(h) }
      samples << MessagePack.pack({ "a" => [1, 2.5, "x" * 300, "y".b * 40, nil, { 1 => [true] }], "b" => -2**40 })
      samples.each do |data|
        whole = MessagePack.unpack(data, allow_unknown_ext: true)
        (0...data.bytesize).each do |n|
          prefix = data.byteslice(0, n)
          expect { MessagePack.unpack(prefix, allow_unknown_ext: true) }.to raise_error(EOFError), "#{hex(data)} [0, #{n}]"
          u = MessagePack::Unpacker.new(allow_unknown_ext: true)
          u.feed(prefix)
          expect { u.read }.to raise_error(EOFError)
          u.feed(data.byteslice(n..))
          expect(u.read).to eq(whole)
          s = MessagePack::Unpacker.new
          s.feed(prefix)
          expect { s.skip }.to raise_error(EOFError)
        end
      end
    end

    it "every truncated prefix of every msgpack-test-suite vector raises EOFError" do
      path = Fixtures::MSGPACK_TEST_SUITE_JSON
      expect(File.file?(path)).to be(true), "test vectors missing: #{path}"

      checked = 0
      JSON.parse(File.read(path)).each_value do |group|
        group.each do |entry|
          entry["msgpack"].each do |h|
            data = bin(h)
            (0...data.bytesize).each do |n|
              expect { MessagePack.unpack(data.byteslice(0, n), allow_unknown_ext: true) }
                .to raise_error(EOFError), "#{h} cut at #{n}"
              checked += 1
            end
          end
        end
      end
      expect(checked).to be > 500
    end

    describe "timestamps" do
      let(:time_factory) do
        f = MessagePack::Factory.new
        f.register_type(-1, Time, packer: MessagePack::Time::Packer, unpacker: MessagePack::Time::Unpacker)
        f
      end

      it "a payload that is not 4, 8 or 12 bytes raises MalformedFormatError" do
        [0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 16, 255].each do |n|
          payload = "\x00".b * n
          expect { MessagePack::Timestamp.from_msgpack_ext(payload) }
            .to raise_error(MessagePack::MalformedFormatError, "Invalid timestamp data size: #{n}")
          expect { MessagePack::Time::Unpacker.call(payload) }.to raise_error(MessagePack::MalformedFormatError)
          msg = bin("c7") + [n].pack("C") + bin("ff") + payload
          expect { time_factory.load(msg) }.to raise_error(MessagePack::MalformedFormatError), "#{n} via Time"
        end
        f = MessagePack::Factory.new
        f.register_type(-1, MessagePack::Timestamp)
        expect { f.load(bin("d5 ff 0000")) }.to raise_error(MessagePack::MalformedFormatError)
        expect { f.load(bin("d8 ff") + "\x00".b * 16) }.to raise_error(MessagePack::MalformedFormatError)
      end

      it "a bad timestamp in a stream leaves the following objects readable", skip: rs_only do
        u = time_factory.unpacker
        u.feed(bin("92 d5 ff 0000 01") + bin("d6 ff 00000001") + bin("02"))
        expect { u.read }.to raise_error(MessagePack::MalformedFormatError)
        # The 01 belonged to the failed array.
        expect(u.read).to eq(Time.at(1))
        expect(u.read).to eq(2)
      end

      it "nanoseconds >= 10^9 are not rejected (as in the C gem): Timestamp keeps them, Time carries them" do
        ts = MessagePack::Timestamp.from_msgpack_ext([1_000_000_000, 5].pack("L>q>"))
        expect([ts.sec, ts.nsec]).to eq([5, 1_000_000_000])
        ts = MessagePack::Timestamp.from_msgpack_ext([0xffff_ffff, 0].pack("L>q>"))
        expect([ts.sec, ts.nsec]).to eq([0, 0xffff_ffff])
        ts = MessagePack::Timestamp.from_msgpack_ext([0xffff_fffc | 0, 7].pack("L>L>")) # 30-bit nsec field
        expect([ts.sec, ts.nsec]).to eq([7, 0x3fff_ffff])

        t = MessagePack::Time::Unpacker.call([1_000_000_000, 5].pack("L>q>"))
        expect([t.to_i, t.nsec]).to eq([6, 0])
        t = time_factory.load(bin("c7 0c ff") + [1_999_999_999, 5].pack("L>q>"))
        expect([t.to_i, t.nsec]).to eq([6, 999_999_999])
      end

      it "extreme seconds decode without error" do
        t = MessagePack::Time::Unpacker.call([999_999_999, -2**63].pack("L>q>"))
        expect(t.to_i).to eq(-2**63)
        t = MessagePack::Time::Unpacker.call([0, 2**63 - 1].pack("L>q>"))
        expect(t.to_i).to eq(2**63 - 1)
      end
    end
  end

  # ------------------------------------------------------------------ state after errors

  describe "unpacker state after an exception" do
    def read_all(u, n)
      Array.new(n) do
        u.read
      rescue MessagePack::UnpackError, EOFError, EncodingError, StandardError => e
        e.class
      end
    end

    it "c1 between objects: the following objects are still readable" do
      u = MessagePack::Unpacker.new
      u.feed(bin("01 c1 02 03"))
      expect(read_all(u, 4)).to eq([1, MessagePack::MalformedFormatError, 2, 3])
    end

    it "c1 between objects with feed_each: the next each continues after it" do
      u = MessagePack::Unpacker.new
      seen = []
      expect { u.feed_each(bin("01 c1 02 03")) { |o| seen << o } }.to raise_error(MessagePack::MalformedFormatError)
      u.each { |o| seen << o }
      expect(seen).to eq([1, 2, 3])
    end

    it "c1 inside a container: the rest of the container is discarded, reading goes on after it",
       skip: rs_only do
      # (The C gem instead keeps filling the container: [1, 2, 4].)
      u = MessagePack::Unpacker.new
      u.feed(bin("93 01 c1 02 04 05"))
      expect(read_all(u, 4)).to eq([MessagePack::MalformedFormatError, 4, 5, EOFError])
    end

    it "a length-limit error discards the rejected payload, also when it arrives later",
       skip: rs_only do
      u = MessagePack::Unpacker.new(max_str_len: 2)
      u.feed(bin("01 a3 61"))
      expect(read_all(u, 3)).to eq([1, MessagePack::MalformedFormatError, EOFError])
      u.feed(bin("62 63 02"))
      expect(read_all(u, 2)).to eq([2, EOFError])
    end

    it "StackError discards the rest of the too-deep object", skip: rs_only do
      u = MessagePack::Unpacker.new(max_depth: 2)
      u.feed(bin("01 91 91 91 05 06"))
      expect(read_all(u, 4)).to eq([1, MessagePack::StackError, 6, EOFError])
    end

    it "an exception from an ext unpacker proc propagates unchanged; the rest of the container is discarded",
       skip: rs_only do
      boom = Class.new(StandardError)
      u = MessagePack::Unpacker.new
      err = boom.new("boom")
      u.register_type(1) { |d| d == "x" ? raise(err) : d }
      u.feed(bin("93 01 d4 01 78 02 d4 01 79"))
      expect { u.read }.to raise_error { |e| expect(e).to equal(err) }
      expect(read_all(u, 2)).to eq(["y", EOFError])
    end

    it "throw from an ext unpacker proc leaves a usable unpacker" do
      u = MessagePack::Unpacker.new
      u.register_type(1) { |_| throw :out, :thrown }
      u.feed(bin("92 d4 01 41 05 06"))
      expect(catch(:out) { u.read }).to eq(:thrown)
      u.reset
      u.feed(bin("92 05 06"))
      expect(u.read).to eq([5, 6])
    end

    it "an exception from an ext object's #hash (as a map key) propagates; reading continues", skip: rs_only do
      key_class = Struct.new(:x) do
        def hash = raise(ArgumentError, "bad hash")
      end
      u = MessagePack::Unpacker.new
      u.register_type(1) { |d| key_class.new(d) }
      u.feed(bin("82 d4 01 41 01 02 03 07"))
      expect { u.read }.to raise_error(ArgumentError, "bad hash")
      expect(u.read).to eq(7)
    end

    it "EncodingError (symbolize_keys, invalid UTF-8 key) discards the rest of the map", skip: rs_only do
      u = MessagePack::Unpacker.new(symbolize_keys: true)
      u.feed(bin("81 a2 ff fe 01 92 01 02"))
      expect(read_all(u, 3)).to eq([EncodingError, [1, 2], EOFError])
    end

    it "an exception from the IO keeps the partial object: the next read resumes where it stopped" do
      chunks = [bin("93 01"), IOError.new("network down"), bin("02 03"), bin("04")]
      io = Object.new
      io.define_singleton_method(:readpartial) do |_n, buf = nil|
        c = chunks.shift
        raise EOFError if c.nil?
        raise c if c.is_a?(Exception)

        buf ? buf.replace(c) : c
      end
      u = MessagePack::Unpacker.new(io)
      expect { u.read }.to raise_error(IOError, "network down")
      expect(u.read).to eq([1, 2, 3])
      expect(u.read).to eq(4)
      expect { u.read }.to raise_error(EOFError)
    end

    it "an IO returning a non-String raises TypeError and the unpacker stays usable", skip: rs_only do
      calls = 0
      io = Object.new
      io.define_singleton_method(:readpartial) do |_n, buf = nil|
        calls += 1
        raise EOFError if calls > 2
        next 42 if calls == 1

        buf ? buf.replace("\x07") : "\x07"
      end
      u = MessagePack::Unpacker.new(io)
      expect { u.read }.to raise_error(TypeError)
      expect(u.read).to eq(7)
    end

    it "each over an IO: an error propagates, the next each continues" do
      chunks = [bin("01 02"), RuntimeError.new("x"), bin("03")]
      io = Object.new
      io.define_singleton_method(:readpartial) do |_n, buf = nil|
        c = chunks.shift
        raise EOFError if c.nil?
        raise c if c.is_a?(Exception)

        buf ? buf.replace(c) : c
      end
      u = MessagePack::Unpacker.new(io)
      seen = []
      expect { u.each { |o| seen << o } }.to raise_error(RuntimeError, "x")
      u.each { |o| seen << o }
      expect(seen).to eq([1, 2, 3])
    end

    it "reset makes the unpacker fully reusable after every kind of error" do
      boom = Class.new(StandardError)
      failing_io = Object.new
      failing_io.define_singleton_method(:readpartial) { |*| raise IOError, "gone" }
      scenarios = {
        "c1" => [{}, bin("92 01 c1 02")],
        "StackError" => [{}, nested(200, "91")],
        "limit" => [{ max_str_len: 1 }, bin("92 01 a2 6162")],
        "EOF mid-object" => [{}, bin("93 01 02")],
        "ext proc raised" => [{}, bin("92 01 d4 05 00 03")],
        "EncodingError" => [{ symbolize_keys: true }, bin("82 a2 fffe 01")],
        "unknown ext" => [{}, bin("92 01 d4 09 00")],
        "trailing bytes" => [{}, bin("01 02 03")],
      }
      scenarios.each do |name, (opts, data)|
        u = MessagePack::Unpacker.new(opts)
        u.register_type(5) { |_| raise boom }
        u.feed(data)
        begin
          name == "trailing bytes" ? u.full_unpack : u.read
        rescue MessagePack::UnpackError, EOFError, EncodingError, boom
          nil
        end
        u.reset
        expect(u.buffer.size).to eq(0), name
        u.feed(bin("92 91 01 81 a1 6b 02"))
        expect(u.read).to eq([[1], { (opts[:symbolize_keys] ? :k : "k") => 2 }]), name
        expect { u.read }.to raise_error(EOFError), name
      end

      u = MessagePack::Unpacker.new(failing_io)
      expect { u.read }.to raise_error(IOError)
      u.reset
      u.feed(bin("91 01"))
      expect(u.read).to eq([1])
    end

    it "Pool#load after a failed load works (members are reset)", :since_1_8 do
      pool = MessagePack::Factory.new.pool(1)
      expect { pool.load(bin("92 01 c1")) }.to raise_error(MessagePack::MalformedFormatError)
      expect { pool.load(bin("92 01")) }.to raise_error(EOFError)
      expect(pool.load(bin("92 01 02"))).to eq([1, 2])
    end

    it "MessagePack.unpack leaves the caller's String untouched when decoding fails" do
      data = +"\x92\x01\xc1" + ("x" * 300)
      data.force_encoding(Encoding::BINARY)
      before = data.dup
      expect { MessagePack.unpack(data) }.to raise_error(MessagePack::MalformedFormatError)
      expect(data).to eq(before)
      expect(data).not_to be_frozen
      data << "more" # still writable
    end
  end

  # ------------------------------------------------------------------ re-entrancy

  describe "an ext proc using the unpacker or packer that called it" do
    # Each scenario runs in a child so that a crash fails the example instead of rspec.
    # Allowed outcomes: it works, or it raises a clear MessagePack::UnpackError (msgpack-rs
    # says "... in use (re-entrant call ...)"); afterwards the unpacker must still work.
    {
      "feed" => "u.feed(bin('07'))",
      "read" => "u.read",
      "skip" => "u.skip",
      "reset" => "u.reset",
      "each" => "u.each { }",
      "feed_each" => "u.feed_each(bin('07')) { }",
      "full_unpack" => "u.full_unpack",
      "read_array_header" => "u.read_array_header",
      "skip_nil" => "u.skip_nil",
      "buffer.clear" => "u.buffer.clear",
      "buffer.read" => "u.buffer.read",
      "register_type" => "u.register_type(2) { |d| d }",
    }.each do |name, call|
      it "unpacker ext proc calling #{name} on its own unpacker: works or raises UnpackError, never crashes" do
        out, err, status = child_run(<<~RUBY)
          u = MessagePack::Unpacker.new
          u.register_type(1) { |d| #{call}; d }
          u.feed(bin("92 d4 01 78 02 03"))
          first = begin
            [:value, u.read]
          rescue Exception => e
            [:error, e.class.name, e.message]
          end
          u.reset
          u.feed(bin("92 01 02"))
          report("first" => first, "after_reset" => u.read)
        RUBY
        expect_no_crash(status, err)
        expect(status).to be_success, err[0, 2000]
        r = JSON.parse(out.lines.last)
        first = r["first"]
        if first[0] == "error"
          expect(first[1]).to match(/\AMessagePack::|\AEOFError\z/), first.inspect
        end
        expect(r["after_reset"]).to eq([1, 2])
      end
    end

    it "re-entrant calls raise MessagePack::UnpackError naming the problem", skip: rs_only do
      u = MessagePack::Unpacker.new
      u.register_type(1) { |d| u.feed("\x01") && d }
      u.feed(bin("92 d4 01 78 02"))
      expect { u.read }.to raise_error(MessagePack::UnpackError, /in use \(re-entrant call/)
    end

    it "unpacker ext proc calling MessagePack.unpack / Factory#load (another decoder) works" do
      f = MessagePack::Factory.new
      f.register_type(1, Object, unpacker: ->(d) { f.load(d) })
      expect(f.load(bin("92 c7 02 01 91 07 05"))).to eq([[7], 5])
      g = MessagePack::Factory.new
      g.register_type(1, Object, unpacker: ->(d) { MessagePack.unpack(d) })
      expect(g.load(bin("92 c7 02 01 91 07 05"))).to eq([[7], 5])
    end

    it "unpacker ext proc that modifies the source String does not affect the decode" do
      f = MessagePack::Factory.new
      data = bin("92 d4 01 41 da 01 00") + "a".b * 256
      f.register_type(1, Object, unpacker: ->(d) { data.replace("zzzz") && d })
      got = f.load(data)
      expect(got[0]).to eq("A")
      expect(got[1]).to eq("a" * 256)
    end

    context "recursive ext types (their proc is given the unpacker by design)", :since_1_7 do
      let(:setup) do
        <<~'RUBY'
          Box = Struct.new(:v)
          def factory(&unpacker)
            f = MessagePack::Factory.new
            f.register_type(1, Box, packer: ->(x, pk) { pk.write(x.v) }, unpacker: unpacker, recursive: true)
            f
          end
        RUBY
      end

      it "reading the nested objects works" do
        r = child_report(setup + <<~'RUBY')
          f = factory { |u| Box.new(u.read) }
          v = f.load(f.dump([Box.new([1, Box.new(2)]), 3]))
          report(v.inspect)
        RUBY
        expect(r).to eq("[#<struct Box v=[1, #<struct Box v=2>]>, 3]")
      end

      it "an exception from the inner read propagates and the unpacker is reusable after reset" do
        r = child_report(setup + <<~'RUBY')
          f = factory { |u| Box.new(u.read) }
          u = f.unpacker
          u.feed(bin("92 01 c7 00 01 c1 02"))
          e = (u.read rescue $!)
          u.reset
          u.feed(f.dump([Box.new(1)]))
          report([e.class.name, u.read.inspect])
        RUBY
        expect(r).to eq(["MessagePack::MalformedFormatError", "[#<struct Box v=1>]"])
      end

      it "a proc that rescues an error from its inner read does not crash" do
                "the outer decoder still indexes into it"
        out, err, status = child_run(setup + <<~'RUBY')
          f = factory { |u| Box.new((u.read rescue $!.class.name)) }
          u = f.unpacker
          u.feed(bin("92 01 c7 00 01 c1 02"))
          report((u.read.inspect rescue "#{$!.class}"))
        RUBY
        expect_no_crash(status, err)
        expect(status).to be_success
        expect(out).not_to be_empty
      end

      it "a proc that calls reset on its unpacker does not crash" do
                "suspended outer decoder still uses"
        out, err, status = child_run(setup + <<~'RUBY')
          f = factory { |u| u.reset; :x }
          u = f.unpacker
          u.feed(bin("92 01 c7 00 01 02"))
          report((u.read.inspect rescue "#{$!.class}"))
        RUBY
        expect_no_crash(status, err)
        expect(status).to be_success
        # The outer object it was part of is gone: the outer read fails cleanly.
        expect(out).to include("MessagePack::UnpackError")
      end

      it "a proc that calls feed, skip or full_unpack on its unpacker does not crash" do
        %w[u.feed(bin("05")) u.skip u.full_unpack u.buffer.clear].each do |call|
          out, err, status = child_run(setup + <<~RUBY)
            f = factory { |u| x = u.read; #{call}; Box.new(x) }
            u = f.unpacker
            u.feed(bin("92 92 01 c7 00 01 91 05 03 04 07"))
            r = (u.read.inspect rescue "\#{$!.class}")
            u.reset
            u.feed(bin("01"))
            report([r, u.read])
          RUBY
          expect_no_crash(status, err)
          expect(status).to be_success, "#{call}: #{err[0, 1500]}"
          expect(JSON.parse(out.lines.last)[1]).to eq(1), call
        end
      end
    end

    it "packer ext proc writing to its own packer (non-recursive) interleaves like the C gem" do
      k = Class.new
      outputs = {
        "pk.write(5)" => "9205d4017801",
        "pk.write_nil" => "92c0d4017801",
        "pk.write_array_header(1)" => "9291d4017801",
        "pk.write_ext(3, 'z')" => "92d4037ad4017801",
        "pk.flush" => "92d4017801",
        "pk.to_s" => "92d4017801",
        "pk.buffer.clear" => "d4017801",
        "pk.full_pack" => "d4017801",
      }
      outputs.each do |call, expected|
        pk = MessagePack::Packer.new
        pk.register_type(1, k) do |_|
          eval(call)
          "x"
        end
        pk.write([k.new, 1])
        expect(hex(pk.to_s).delete(" ")).to eq(expected), call
      end
    end

    it "recursive packer ext proc calling flush on its IO-backed packer keeps the output well-formed",
       :since_1_7 do
              "the enclosing headers (output 92 01 02 92 c7 00 01 03)"
      box = Struct.new(:v)
      f = MessagePack::Factory.new
      f.register_type(1, box, packer: ->(x, pk) { pk.write(x.v) && pk.flush },
                              unpacker: ->(u) { box.new(u.read) }, recursive: true)
      io = StringIO.new(+"")
      pk = f.packer(io)
      pk.write([box.new([1, 2]), 3])
      pk.flush
      expect(hex(io.string)).to eq("92 c7 03 01 92 01 02 03")
    end

    it "packer ext proc calling MessagePack.pack / Factory#dump (another packer) works" do
      k = Class.new
      f = MessagePack::Factory.new
      f.register_type(1, k, packer: ->(_) { MessagePack.pack([1, 2]) })
      expect(hex(f.dump([k.new]))).to eq("91 c7 03 01 92 01 02")
      g = MessagePack::Factory.new
      g.register_type(1, k, packer: ->(_) { g.dump(2) })
      expect(hex(g.dump([k.new]))).to eq("91 d4 01 02")
    end
  end

  # ------------------------------------------------------------------ invalid UTF-8

  describe "invalid UTF-8 in str" do
    it "decodes to a UTF-8 String with valid_encoding? == false, bytes kept" do
      [bin("a2 ff fe"), bin("a3 ed a0 80"), bin("a2 c0 80"), bin("da 01 00") + "\xff".b * 256].each do |data|
        [{}, { freeze: true }].each do |opts|
          s = MessagePack.unpack(data, opts)
          expect(s.encoding).to eq(Encoding::UTF_8)
          expect(s.valid_encoding?).to be(false)
          expect(s.b).to eq(data.byteslice((data.getbyte(0) == 0xda ? 3 : 1)..))
          u = MessagePack::Unpacker.new(opts)
          u.feed(data)
          expect(u.read.valid_encoding?).to be(false)
        end
      end
    end

    it "as a map key: a frozen UTF-8 String with valid_encoding? == false" do
      k = MessagePack.unpack(bin("81 a2 ff fe 01")).keys.first
      expect([k.encoding, k.valid_encoding?, k.frozen?]).to eq([Encoding::UTF_8, false, true])
    end

    it "symbolize_keys with an invalid UTF-8 str key raises EncodingError" do
      %w[81a2fffe01 81a2c08001 81a3eda08001].each do |h|
        expect { MessagePack.unpack(bin(h), symbolize_keys: true) }.to raise_error(EncodingError), h
        expect { MessagePack.unpack(bin(h), symbolize_keys: true, key_cache: true) }.to raise_error(EncodingError)
        expect { MessagePack::Factory.new.load(bin(h), symbolize_keys: true) }.to raise_error(EncodingError)
        u = MessagePack::Unpacker.new(symbolize_keys: true)
        u.feed(bin(h))
        expect { u.read }.to raise_error(EncodingError)
      end
    end

    it "symbolize_keys with an invalid-UTF-8 bin key gives a binary Symbol (no error)" do
      key = MessagePack.unpack(bin("81 c4 02 ff fe 01"), symbolize_keys: true).keys.first
      expect(key).to be_a(Symbol)
      expect(key.to_s.b).to eq("\xff\xfe".b)
      expect(key.encoding).to eq(Encoding::BINARY)
    end
  end
end
