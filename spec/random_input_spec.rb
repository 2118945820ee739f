# frozen_string_literal: true

# Random and mutated input through every decoding entry point.
#
# Each case is a byte string: a valid message (encoded here with randomly chosen, often
# non-minimal formats), a mutation of one (bit flips, interesting bytes, truncation,
# insertion, deletion, length-header bumps, splices), or random bytes. It goes through
#   * MessagePack.unpack / Factory#load (the String fast path), and
#   * an Unpacker fed in random chunks or byte by byte: feed_each, or a random mix of
#     read / skip / skip_nil / read_array_header / read_map_header / each,
# with random options (symbolize_keys, freeze, key_cache, allow_unknown_ext, limits), on the
# default factory or on one with ext types (Time, plain procs, a recursive type, a proc that
# raises). Every outcome must be a value or one of the documented exceptions:
#   MessagePack::UnpackError (and subclasses), EOFError, EncodingError (symbolize_keys),
#   plus RandomInputFuzz::ExtBoom, which the raising ext proc raises.
# Anything else (TypeError, NoMethodError, RangeError, a crash, a hang) is a failure.
# After each case the Unpacker is reset and must decode a probe message again.
#
# For the default factory the fast path and the streaming Unpacker are compared:
# a value from MessagePack.unpack must come out of the chunked stream as the only object
# (same classes, encodings, frozen state, NaN-aware equality); EOFError means the stream
# yields nothing; another error means the stream raises the same class first. Unmutated
# messages must decode to the model they were encoded from, and their prefixes to EOFError.
#
# The pass runs in a child Ruby (so a crash or hang fails the example instead of killing
# rspec) and writes the current case to a progress file, so a crash names its case.
#
#   CASES=30000      number of cases (default 30000; the pass also stops after FUZZ_SECONDS)
#   FUZZ_SECONDS=20  time budget of the pass
#   SEED=1234        seed (default fixed; SEED=random picks one and prints it)
#   GC_STRESS=1      run a much smaller pass (GC_STRESS_CASES, default 60) under GC.stress
#
# The same file runs the pass outside rspec (for long runs):
#   ruby -I lib spec/random_input_spec.rb --cases 500000 --seconds 3600 --seed 1
# and replays a reported case (every case has its own Random, derived from seed and index):
#   ruby -I lib spec/random_input_spec.rb --seed 1592651789 --first 1234 --cases 1
require "msgpack"
require "json"

module RandomInputFuzz
  class ExtBoom < StandardError; end

  # What non-recursive registered ext procs return.
  Tagged = Struct.new(:type, :payload)
  # What the recursive ext type (2) returns: the next object, boxed.
  Box = Struct.new(:value)

  ALLOWED = [MessagePack::UnpackError, EOFError, EncodingError].freeze
  ALLOWED_WITH_EXT = (ALLOWED + [ExtBoom]).freeze

  DEFAULT_SEED = 0x5EED_F00D

  # Decoded after every reset: two integers, which no option or limit affects. If a
  # partial container survived the reset they would land in it instead.
  PROBE = "\x2a\xcd\x12\x34".b.freeze
  PROBE_VALUES = [42, 0x1234].freeze

  INTERESTING_BYTES = [
    0x00, 0x01, 0x7f, 0x80, 0x81, 0x8f, 0x90, 0x91, 0x9f, 0xa0, 0xa1, 0xbf, 0xc0, 0xc1,
    0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf,
    0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd,
    0xde, 0xdf, 0xe0, 0xff
  ].freeze

  INTERESTING_LENGTHS = [
    0, 1, 2, 15, 16, 31, 32, 255, 256, 0x7fff, 0x8000, 0xffff, 0x10000,
    0x7fff_ffff, 0x8000_0000, 0x8000_0001, 0xffff_fffe, 0xffff_ffff
  ].freeze

  INTERESTING_INTS = [
    0, 1, 127, 128, 255, 256, 65_535, 65_536, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
    2**63 - 1, 2**63, 2**64 - 1, -1, -31, -32, -33, -127, -128, -129, -32_768, -32_769,
    -2**31, -2**31 - 1, -2**63
  ].freeze

  # ---------------------------------------------------------------- encoder

  # Encodes a model value with randomly chosen valid formats (not only the minimal one)
  # and records where length headers are, for header-bump mutations.
  class LooseEncoder
    # [offset, width] of every length field (width 0: the count is in the lead byte).
    attr_reader :headers, :out

    def initialize(rng)
      @rng = rng
      @out = String.new(encoding: Encoding::BINARY)
      @headers = []
    end

    def encode(obj)
      case obj
      when nil then byte(0xc0)
      when true then byte(0xc3)
      when false then byte(0xc2)
      when Integer then int(obj)
      when Float then float(obj)
      when String then obj.encoding == Encoding::BINARY ? bin(obj) : str(obj)
      when Array
        container_header(obj.size, 0x90, 0xdc, 0xdd)
        obj.each { |o| encode(o) }
      when Hash
        container_header(obj.size, 0x80, 0xde, 0xdf)
        obj.each do |k, v|
          encode(k)
          encode(v)
        end
      when MessagePack::ExtensionValue then ext(obj.type, obj.payload)
      else raise ArgumentError, "no model encoding for #{obj.class}"
      end
      self
    end

    private

    def byte(b) = @out << b.chr

    def raw(fmt, *vals) = @out << vals.pack(fmt)

    def pick(choices) = choices[@rng.rand(choices.size)]

    def int(n)
      forms = []
      forms << [:fix] if n.between?(-32, 127)
      if n >= 0
        forms << [0xcc, "C"] if n < 2**8
        forms << [0xcd, "n"] if n < 2**16
        forms << [0xce, "N"] if n < 2**32
        forms << [0xcf, "Q>"] if n < 2**64
      end
      forms << [0xd0, "c"] if n.between?(-2**7, 2**7 - 1)
      forms << [0xd1, "s>"] if n.between?(-2**15, 2**15 - 1)
      forms << [0xd2, "l>"] if n.between?(-2**31, 2**31 - 1)
      forms << [0xd3, "q>"] if n.between?(-2**63, 2**63 - 1)
      lead, fmt = pick(forms)
      if lead == :fix
        raw("c", n)
      else
        byte(lead)
        raw(fmt, n)
      end
    end

    def float(f)
      exact32 = f.nan? || [f].pack("g").unpack1("g") == f
      if exact32 && @rng.rand < 0.5
        byte(0xca)
        raw("g", f)
      else
        byte(0xcb)
        raw("G", f)
      end
    end

    # A length field: fixed in the lead byte when allowed, else 8/16/32 bits.
    def length_header(len, fix_base, fix_max, l8, l16, l32)
      forms = []
      forms << :fix if fix_base && len <= fix_max
      forms << :l8 if l8 && len < 2**8
      forms << :l16 if len < 2**16
      forms << :l32
      case pick(forms)
      when :fix
        @headers << [@out.bytesize, 0]
        byte(fix_base | len)
      when :l8
        byte(l8)
        @headers << [@out.bytesize, 1]
        raw("C", len)
      when :l16
        byte(l16)
        @headers << [@out.bytesize, 2]
        raw("n", len)
      when :l32
        byte(l32)
        @headers << [@out.bytesize, 4]
        raw("N", len)
      end
    end

    def container_header(len, fix, l16, l32) = length_header(len, fix, 15, nil, l16, l32)

    def str(s)
      length_header(s.bytesize, 0xa0, 31, 0xd9, 0xda, 0xdb)
      @out << s.b
    end

    def bin(s)
      length_header(s.bytesize, nil, 0, 0xc4, 0xc5, 0xc6)
      @out << s
    end

    def ext(type, payload)
      len = payload.bytesize
      fixed = { 1 => 0xd4, 2 => 0xd5, 4 => 0xd6, 8 => 0xd7, 16 => 0xd8 }[len]
      forms = [:l32]
      forms << :l16 if len < 2**16
      forms << :l8 if len < 2**8
      forms << :fixed if fixed
      case pick(forms)
      when :fixed then byte(fixed)
      when :l8 then ext_length(0xc7, "C", 1, len)
      when :l16 then ext_length(0xc8, "n", 2, len)
      else ext_length(0xc9, "N", 4, len)
      end
      raw("c", type)
      @out << payload
    end

    def ext_length(lead, fmt, width, len)
      byte(lead)
      @headers << [@out.bytesize, width]
      raw(fmt, len)
    end
  end

  # ---------------------------------------------------------------- models

  class Generator
    def initialize(rng)
      @rng = rng
    end

    def pick(choices) = choices[@rng.rand(choices.size)]

    def chance(p) = @rng.rand < p

    def value(depth = 0)
      r = @rng.rand(depth >= 4 ? 7 : 10)
      case r
      when 0 then pick([nil, true, false])
      when 1 then chance(0.6) ? pick(INTERESTING_INTS) : @rng.rand(-2**40..2**40)
      when 2 then float
      when 3, 4 then utf8_string
      when 5 then binary_string
      when 6 then ext_value
      when 7, 8 then Array.new(@rng.rand(chance(0.1) ? 40 : 5)) { value(depth + 1) }
      else
        h = {}
        @rng.rand(chance(0.1) ? 20 : 5).times { h[key(depth)] = value(depth + 1) }
        h
      end
    end

    def key(depth)
      case @rng.rand(8)
      when 0 then @rng.rand(-40..300)
      when 1 then nil
      when 2 then binary_string
      when 3 then depth < 3 ? [@rng.rand(5)] : true
      else utf8_string(20)
      end
    end

    def float
      case @rng.rand(4)
      when 0 then pick([0.0, -0.0, 1.5, -2.25, Float::INFINITY, -Float::INFINITY, Float::NAN, 1e300])
      when 1 then [@rng.rand * 1000].pack("g").unpack1("g") # exact as float32
      else (@rng.rand - 0.5) * 10**@rng.rand(-5..20)
      end
    end

    def utf8_string(max = 40)
      len = chance(0.03) ? @rng.rand(256..400) : @rng.rand(0..max)
      s = case @rng.rand(4)
          when 0 then Array.new(len) { pick(%w[a b é 日 🎉 x]) }.join
          when 1 then Array.new(len) { @rng.rand(256) }.pack("C*").force_encoding(Encoding::UTF_8)
          else Array.new(len) { (97 + @rng.rand(26)).chr }.join
          end
      s.force_encoding(Encoding::UTF_8)
    end

    def binary_string
      len = chance(0.03) ? @rng.rand(256..400) : @rng.rand(0..40)
      Array.new(len) { @rng.rand(256) }.pack("C*")
    end

    def ext_value
      payload_len = chance(0.5) ? pick([1, 2, 4, 8, 16]) : @rng.rand(0..20)
      payload = Array.new(payload_len) { @rng.rand(256) }.pack("C*")
      type = chance(0.3) ? pick([-1, 0, 1, 2, 3, 127, -128]) : @rng.rand(-128..127)
      MessagePack::ExtensionValue.new(type, payload)
    end
  end

  # ---------------------------------------------------------------- mutations

  def self.mutate(rng, data, headers)
    data = data.dup
    rounds = 1 + rng.rand(3)
    rounds.times do
      case rng.rand(10)
      when 0 # bit flips
        next if data.empty?

        (1 + rng.rand(3)).times do
          i = rng.rand(data.bytesize)
          data.setbyte(i, data.getbyte(i) ^ (1 << rng.rand(8)))
        end
      when 1 # an interesting byte
        next if data.empty?

        data.setbyte(rng.rand(data.bytesize), INTERESTING_BYTES[rng.rand(INTERESTING_BYTES.size)])
      when 2 # truncation
        data = data.byteslice(0, rng.rand(data.bytesize + 1))
      when 3 # insertion
        ins = Array.new(1 + rng.rand(6)) do
          rng.rand < 0.5 ? INTERESTING_BYTES[rng.rand(INTERESTING_BYTES.size)] : rng.rand(256)
        end.pack("C*")
        at = rng.rand(data.bytesize + 1)
        data = data.byteslice(0, at) + ins + data.byteslice(at..)
      when 4 # deletion
        next if data.empty?

        at = rng.rand(data.bytesize)
        data = data.byteslice(0, at) + data.byteslice((at + 1 + rng.rand(4))..).to_s
      when 5, 6 # header bump
        next if headers.empty?

        off, width = headers[rng.rand(headers.size)]
        next if off >= data.bytesize

        bump_header(rng, data, off, width)
      when 7 # duplicate a slice
        next if data.empty?

        at = rng.rand(data.bytesize)
        len = 1 + rng.rand([data.bytesize - at, 16].min)
        piece = data.byteslice(at, len)
        ins = rng.rand(data.bytesize + 1)
        data = data.byteslice(0, ins) + piece + data.byteslice(ins..)
      when 8 # swap a lead byte for another family
        next if headers.empty?

        off, width = headers[rng.rand(headers.size)]
        lead = width.zero? ? off : off - 1
        next if lead.negative? || lead >= data.bytesize

        data.setbyte(lead, INTERESTING_BYTES[rng.rand(INTERESTING_BYTES.size)])
      else # splice with a nested-header run
        run = [[0x91, 0x81, 0xdc, 0xdd, 0xde, 0xdf][rng.rand(6)]].pack("C")
        run += "\xff\xff".b if run.getbyte(0) >= 0xdc
        run += "\xff\xff".b if run.getbyte(0) == 0xdd || run.getbyte(0) == 0xdf
        at = rng.rand(data.bytesize + 1)
        data = data.byteslice(0, at) + run * (1 + rng.rand(200)) + data.byteslice(at..)
      end
    end
    data
  end

  def self.bump_header(rng, data, off, width)
    if width.zero?
      lead = data.getbyte(off)
      base, bits = case lead
                   when 0x80..0x8f then [0x80, 0x0f]
                   when 0x90..0x9f then [0x90, 0x0f]
                   when 0xa0..0xbf then [0xa0, 0x1f]
                   else return
                   end
      data.setbyte(off, base | rng.rand(bits + 1))
      return
    end
    return if off + width > data.bytesize

    len = INTERESTING_LENGTHS[rng.rand(INTERESTING_LENGTHS.size)]
    len = rng.rand(2**32) if rng.rand < 0.2
    field = case width
            when 1 then [len & 0xff].pack("C")
            when 2 then [len & 0xffff].pack("n")
            else [len & 0xffff_ffff].pack("N")
            end
    data[off, width] = field
  end

  def self.random_bytes(rng)
    len = rng.rand(rng.rand < 0.2 ? 200 : 24)
    Array.new(len) do
      rng.rand < 0.5 ? INTERESTING_BYTES[rng.rand(INTERESTING_BYTES.size)] : rng.rand(256)
    end.pack("C*")
  end

  # ---------------------------------------------------------------- checks

  # NaN-aware deep equality that also compares classes, string encodings and frozen state.
  def self.same?(a, b)
    return false unless a.class == b.class

    case a
    when Float then (a.nan? && b.nan?) || (a == b && (a.zero? ? (1 / a) == (1 / b) : true))
    when String then a.b == b.b && a.encoding == b.encoding && a.frozen? == b.frozen?
    when Array
      a.size == b.size && a.frozen? == b.frozen? && a.each_index.all? { |i| same?(a[i], b[i]) }
    when Hash
      a.size == b.size && a.frozen? == b.frozen? &&
        a.to_a.zip(b.to_a).all? { |(ka, va), (kb, vb)| same?(ka, kb) && same?(va, vb) }
    when Struct then a.frozen? == b.frozen? && a.to_a.zip(b.to_a).all? { |x, y| same?(x, y) }
    else a == b
    end
  end

  # Equality with a model (no frozen check: keys are frozen, values may be shared).
  def self.model_equal?(got, model)
    case model
    when Float then got.is_a?(Float) && ((got.nan? && model.nan?) || got == model)
    when String then got.is_a?(String) && got.b == model.b && got.encoding == model.encoding
    when Array
      got.is_a?(Array) && got.size == model.size &&
        model.each_index.all? { |i| model_equal?(got[i], model[i]) }
    when Hash
      got.is_a?(Hash) && got.size == model.size &&
        got.to_a.zip(model.to_a).all? { |(gk, gv), (mk, mv)| model_equal?(gk, mk) && model_equal?(gv, mv) }
    when MessagePack::ExtensionValue
      got.is_a?(MessagePack::ExtensionValue) && got.type == model.type && got.payload.b == model.payload.b
    else got.class == model.class && got == model
    end
  end

  # ---------------------------------------------------------------- the pass

  class Runner
    attr_reader :stats, :failures

    def initialize(seed:, cases:, seconds:, progress: nil, gc_stress: false, max_failures: 20, crash_at: nil,
                   first: 0)
      @crash_at = crash_at
      @first = first
      @seed = seed
      @cases = cases
      @seconds = seconds
      @progress = progress
      @gc_stress = gc_stress
      @max_failures = max_failures
      @stats = Hash.new(0)
      @failures = []
      @ext_factory = build_ext_factory
    end

    def build_ext_factory
      f = MessagePack::Factory.new
      f.register_type(-1, ::Time, packer: MessagePack::Time::Packer, unpacker: MessagePack::Time::Unpacker)
      f.register_type(1, Tagged, packer: ->(t) { t.payload }, unpacker: ->(d) { Tagged.new(1, d) })
      f.register_type(2, Box, packer: ->(b, pk) { pk.write(b.value) }, unpacker: ->(u) { Box.new(u.read) },
                              recursive: true)
      f.register_type(3, ExtBoom, packer: ->(_) { "" }, unpacker: lambda { |d|
        raise ExtBoom, "ext proc raised" if d.getbyte(0).to_i.odd?

        Tagged.new(3, d)
      })
      f
    end

    def run
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + @seconds
      i = @first
      while i < @first + @cases
        break if (i & 63).zero? && Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        break if @failures.size >= @max_failures

        run_case(i)
        i += 1
      end
      @stats[:cases] = i - @first
      self
    end

    def run_case(index)
      rng = Random.new((@seed * 1_000_003) + index)
      kind, data, model, _headers = make_input(rng)
      plain = rng.rand < 0.7
      opts = random_options(rng, kind)
      note_progress(index, data, plain, opts)
      Process.kill(:SEGV, Process.pid) if index == @crash_at # harness self-test
      @stats[kind] += 1
      @current = { index: index, kind: kind, hex: data.unpack1("H*"), plain: plain, opts: opts.inspect }
      allowed = plain ? ALLOWED : ALLOWED_WITH_EXT

      one = stressed { outcome(allowed) { plain ? MessagePack.unpack(data, opts) : @ext_factory.load(data, opts) } }
      mode = rng.rand < 0.2 ? :mixed : :feed_each
      stream = stream_through(rng, data, plain, opts, allowed, mode)
      stream.each { |e| @stats[e[0] == :obj ? :stream_values : :"stream_#{e[1].name}"] += 1 }

      @stats[:"one_#{one[0] == :ok ? 'value' : one[1].name}"] += 1
      check_model(data, model, opts, one) if kind == :valid && plain
      check_prefixes(data) if kind == :valid && data.bytesize <= 48 && rng.rand < 0.3
      compare(one, stream) if plain && mode == :feed_each
    rescue StandardError, ScriptError, SystemStackError, NoMemoryError => e
      fail_case("#{e.class}: #{e.message}", e)
    end

    # GC.stress (with --gc-stress) only around msgpack calls: the harness itself would
    # make the pass far too slow.
    def stressed
      GC.stress = true if @gc_stress
      yield
    ensure
      GC.stress = false if @gc_stress
    end

    def make_input(rng)
      r = rng.rand
      if r < 0.12
        [:random, RandomInputFuzz.random_bytes(rng), nil, []]
      else
        model = Generator.new(rng).value
        enc = LooseEncoder.new(rng).encode(model)
        if r < 0.3
          [:valid, enc.out, model, enc.headers]
        else
          [:mutated, RandomInputFuzz.mutate(rng, enc.out, enc.headers), nil, enc.headers]
        end
      end
    end

    def random_options(rng, kind)
      return { allow_unknown_ext: true } if kind == :valid && rng.rand < 0.7

      o = {}
      o[:symbolize_keys] = true if rng.rand < 0.3
      o[:freeze] = true if rng.rand < 0.3
      o[:key_cache] = true if rng.rand < 0.2
      o[:allow_unknown_ext] = true if rng.rand < 0.6
      if rng.rand < 0.25
        o[:max_depth] = rng.rand(0..8)
        o[:max_array_len] = rng.rand(0..20)
        o[:max_map_len] = rng.rand(0..20)
        o[:max_str_len] = rng.rand(0..40)
        o[:max_bin_len] = rng.rand(0..40)
        o[:max_ext_len] = rng.rand(0..20)
        o.delete(o.keys.grep(/max_/).sample(random: rng)) if rng.rand < 0.5
      end
      o
    end

    def note_progress(index, data, plain, opts)
      return unless @progress

      line = "#{index} #{plain ? 'plain' : 'ext'} #{opts.to_a.inspect} #{data.unpack1('H*')}\n"
      @progress.pwrite(line.ljust(@progress_len || 0), 0)
      @progress_len = [line.bytesize, @progress_len || 0].max
    end

    def outcome(allowed)
      [:ok, yield]
    rescue *allowed => e
      [:err, e.class, e.message]
    end

    def chunks_of(rng, data)
      return [data] if data.empty? || rng.rand < 0.1

      if data.bytesize <= 200 && rng.rand < 0.35
        data.each_char.to_a # byte by byte (binary String)
      else
        out = []
        pos = 0
        while pos < data.bytesize
          n = 1 + rng.rand([data.bytesize / 2, 1].max)
          out << data.byteslice(pos, n)
          pos += n
        end
        out
      end
    end

    # Feeds data in chunks; returns the events: [:obj, value] / [:err, class, message].
    def stream_through(rng, data, plain, opts, allowed, mode)
      u = plain ? MessagePack::Unpacker.new(opts) : @ext_factory.unpacker(opts)
      events = []
      chunks_of(rng, data).each do |chunk|
        if mode == :feed_each
          begin
            stressed { u.feed_each(chunk) { |o| events << [:obj, o] } }
          rescue *allowed => e
            events << [:err, e.class, e.message]
          end
        else
          stressed { u.feed(chunk) }
          mixed_ops(rng, u, allowed, events)
        end
      end
      u.reset
      expect_probe(u)
      events
    end

    MIXED_OPS = %i[read read skip skip_nil read_array_header read_map_header each].freeze

    def mixed_ops(rng, u, allowed, events)
      rng.rand(4).times do
        op = MIXED_OPS[rng.rand(MIXED_OPS.size)]
        begin
          if op == :each
            stressed { u.each { |o| events << [:obj, o] } }
          else
            events << [:obj, stressed { u.public_send(op) }]
          end
        rescue *allowed => e
          events << [:err, e.class, e.message]
          break if e.is_a?(EOFError)
        end
      end
    end

    def expect_probe(u)
      fail_case("after reset the buffer still holds #{u.buffer.size} bytes") unless u.buffer.size.zero?
      u.feed(PROBE)
      got = [u.read, u.read]
      fail_case("after reset the probe decoded as #{got.inspect}") unless got == PROBE_VALUES
    rescue *ALLOWED_WITH_EXT => e
      fail_case("after reset the probe raised #{e.class}: #{e.message}")
    end

    def check_model(data, model, opts, one)
      return unless opts == { allow_unknown_ext: true }

      if one[0] != :ok
        fail_case("valid message raised #{one[1]}: #{one[2]}")
      elsif !RandomInputFuzz.model_equal?(one[1], model)
        fail_case("valid message decoded as #{one[1].inspect[0, 300]}, model #{model.inspect[0, 300]}")
      end
    end

    def check_prefixes(data)
      (0...data.bytesize).each do |n|
        r = outcome(ALLOWED) { MessagePack.unpack(data.byteslice(0, n), allow_unknown_ext: true) }
        next if r[0] == :err && r[1] == EOFError

        fail_case("prefix of #{n} bytes gave #{r[0] == :ok ? r[1].inspect[0, 100] : r[1]}")
        break
      end
    end

    def compare(one, events)
      @stats[:compared] += 1
      first = events.first
      if one[0] == :ok
        ok = events.size == 1 && first[0] == :obj && RandomInputFuzz.same?(first[1], one[1])
        fail_case("fast path gave #{one[1].inspect[0, 200]}, stream #{brief(events)}") unless ok
      elsif one[1] == EOFError
        fail_case("fast path EOFError, stream #{brief(events)}") unless events.empty?
      elsif one[2].include?("extra bytes")
        fail_case("fast path extra bytes, stream #{brief(events)}") unless first && first[0] == :obj
      elsif !(first && first[0] == :err && first[1] == one[1])
        fail_case("fast path #{one[1]}: #{one[2]}, stream #{brief(events)}")
      end
    end

    def brief(events)
      events.first(4).map { |e| e[0] == :obj ? e[1].inspect[0, 80] : "#{e[1]}: #{e[2]}" }.inspect
    end

    def fail_case(message, error = nil)
      GC.stress = false
      f = @current.merge(seed: @seed, message: message)
      f[:backtrace] = error.backtrace&.first(6) if error
      @failures << f
    end

    def summary
      { seed: @seed, stats: @stats, failures: @failures }
    end
  end

  def self.main(argv)
    opts = { cases: 30_000, seconds: 20, seed: DEFAULT_SEED, progress: nil, gc_stress: false, crash_at: nil, first: 0 }
    until argv.empty?
      case argv.shift
      when "--cases" then opts[:cases] = Integer(argv.shift)
      when "--seconds" then opts[:seconds] = Float(argv.shift)
      when "--seed" then opts[:seed] = Integer(argv.shift)
      when "--progress" then opts[:progress] = argv.shift
      when "--gc-stress" then opts[:gc_stress] = true
      when "--crash-at" then opts[:crash_at] = Integer(argv.shift) # harness self-test
      when "--first" then opts[:first] = Integer(argv.shift) # replay from this case index
      end
    end
    GC.auto_compact = true if GC.respond_to?(:auto_compact=) rescue nil
    progress = opts[:progress] && File.open(opts[:progress], "w")
    runner = Runner.new(seed: opts[:seed], cases: opts[:cases], seconds: opts[:seconds],
                        progress: progress, gc_stress: opts[:gc_stress], crash_at: opts[:crash_at],
                        first: opts[:first])
    t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    runner.run
    summary = runner.summary
    summary[:seconds] = (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t).round(2)
    puts JSON.generate(summary)
    exit(runner.failures.empty? ? 0 : 1)
  end
end

if $PROGRAM_NAME == __FILE__
  RandomInputFuzz.main(ARGV.dup)
elsif defined?(RSpec)
  require "open3"
  require "tmpdir"

  RSpec.describe "Random and mutated input", skip: (MSGPACK_SPEC_ORACLE ? "msgpack-rs only" : false) do
    def seed_from_env
      case ENV["SEED"]
      when nil, "" then RandomInputFuzz::DEFAULT_SEED
      when "random" then Random.new_seed % 2**31
      else Integer(ENV["SEED"])
      end
    end

    # Runs the pass in a child Ruby; returns the parsed summary.
    def run_pass(cases:, seconds:, seed:, gc_stress: false, extra: [])
      Dir.mktmpdir("msgpack-fuzz") do |dir|
        progress = File.join(dir, "progress")
        args = [RbConfig.ruby, *SPEC_CHILD_LOAD_ARGS, __FILE__, "--cases", cases.to_s, "--seconds", seconds.to_s,
                "--seed", seed.to_s, "--progress", progress]
        args << "--gc-stress" if gc_stress
        args.concat(extra)
        watchdog = seconds + 60
        out = +""
        err = +""
        status = nil
        Open3.popen3({ "RUBYOPT" => nil, "RUBYLIB" => nil }, *args, chdir: REPO_ROOT) do |stdin, stdout, stderr, wait|
          stdin.close
          readers = [Thread.new { out << stdout.read }, Thread.new { err << stderr.read }]
          unless wait.join(watchdog)
            Process.kill(:KILL, wait.pid)
            wait.join
            raise "random pass hung (killed after #{watchdog}s); case in progress: #{File.read(progress)}"
          end
          readers.each(&:join)
          status = wait.value
        end
        line = out.lines.last
        unless line&.start_with?("{")
          current = File.exist?(progress) ? File.read(progress).strip : "(none)"
          raise "random pass died (#{status.inspect}); case in progress (index plain/ext options hex): " \
                "#{current}\nstderr: #{err[0, 3000]}"
        end
        JSON.parse(line, symbolize_names: true).merge(status: status.exitstatus, stderr: err)
      end
    end

    def report(summary)
      warn "\n  random pass: seed #{summary[:seed]}, #{summary[:seconds]}s, #{summary[:stats].to_a.sort.to_h}"
    end

    if ENV["GC_STRESS"]
      it "survives random and mutated input under GC.stress" do
        cases = Integer(ENV.fetch("GC_STRESS_CASES", "60"))
        summary = run_pass(cases: cases, seconds: Float(ENV.fetch("FUZZ_SECONDS", "120")), seed: seed_from_env,
                           gc_stress: true)
        report(summary)
        expect(summary[:failures]).to eq([])
        expect(summary[:status]).to eq(0)
      end
    else
      it "gives a value or a documented exception for every random and mutated input" do
        cases = Integer(ENV.fetch("CASES", "30000"))
        summary = run_pass(cases: cases, seconds: Float(ENV.fetch("FUZZ_SECONDS", "20")), seed: seed_from_env)
        report(summary)
        expect(summary[:failures]).to eq([])
        expect(summary[:status]).to eq(0)
        expect(summary[:stats][:cases]).to be > 500 # the pass really ran
      end
    end

    it "reports a crash of the child with the case in progress (harness self-test)" do
      expect { run_pass(cases: 50, seconds: 10, seed: 1, extra: %w[--crash-at 7]) }
        .to raise_error(RuntimeError, /random pass died .*case in progress \(index plain\/ext options hex\): 7 /m)
    end

    it "accepts only the documented exception classes (the list the pass checks against)" do
      expect(RandomInputFuzz::ALLOWED).to eq([MessagePack::UnpackError, EOFError, EncodingError])
      expect(MessagePack::MalformedFormatError.ancestors).to include(MessagePack::UnpackError)
      expect(MessagePack::StackError.ancestors).to include(MessagePack::UnpackError)
      expect(MessagePack::UnknownExtTypeError.ancestors).to include(MessagePack::UnpackError)
      expect(MessagePack::UnexpectedTypeError.ancestors).to include(MessagePack::UnpackError)
    end

    it "round-trips the loose encoder's output for a fixed sample (the generator itself is sound)" do
      rng = Random.new(42)
      200.times do
        model = RandomInputFuzz::Generator.new(rng).value
        enc = RandomInputFuzz::LooseEncoder.new(rng).encode(model)
        got = MessagePack.unpack(enc.out, allow_unknown_ext: true)
        expect(RandomInputFuzz.model_equal?(got, model)).to be(true), "#{enc.out.unpack1('H*')} -> #{got.inspect}"
      end
    end
  end
end
