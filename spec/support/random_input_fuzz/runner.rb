# frozen_string_literal: true

# One pass of the random-input fuzz (see spec/support/random_input_fuzz.rb): run by
# script/fuzz, which spec/random_input_spec.rb starts in a child.
module RandomInputFuzz
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
        model = RandomObjects.generator(:wire, rng).value
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
      elsif !StrictEquality.same?(one[1], model, frozen: false)
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
        ok = events.size == 1 && first[0] == :obj && StrictEquality.same?(first[1], one[1])
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
end
