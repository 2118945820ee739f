# frozen_string_literal: true

# Reliability finding 1: Unpacker#reset while a decode is in progress (from inside an ext
# unpacker proc, or from another thread while the reading thread is inside one) freed the
# decoder's state under the running read: a segfault. Now, while a read runs, reset and
# every other call that reads or changes the parse state raise MessagePack::UnpackError
# ("Unpacker is in use (re-entrant call from an extension callback?)" / "Unpacker is in use
# by another thread") and change nothing; a recursive ext unpacker may read, skip and feed
# the unpacker it runs in; between the objects each yields no read runs, so its block may
# do anything. The Packer's same-thread calls during a walk work as in the C gem; other
# threads get RuntimeError "Packer is in use: written by another thread".
#
# The crash cases run in child processes. The full method x context contract is
# docs/reentrancy.md (spec/reentrancy_*_spec.rb).

module InUseSpec
  # Shared by the child scripts: the reported repro's data.
  CHILD_SETUP = <<~'RUBY'
    class Foo; end
    EXPECTED = { "a" => :ext, "b" => 1, "c" => 2 }.freeze
    writer = MessagePack::Factory.new
    writer.register_type(1, Foo, packer: ->(_) { "x" })
    EVIL = writer.dump({ "a" => Foo.new, "b" => 1, "c" => 2 })
    FILLER = MessagePack.pack(Array.new(64) { |i| "stale-#{i}-" + "z" * 40 })
    def outcome
      yield
      "ok"
    rescue StandardError => e
      "#{e.class}: #{e.message}"
    end
  RUBY

  REENTRANT = "MessagePack::UnpackError: Unpacker is in use (re-entrant call from an extension callback?)"
  OTHER_THREAD = "MessagePack::UnpackError: Unpacker is in use by another thread"
end

RSpec.describe "Reliability: calls into an Unpacker while it decodes (finding 1)", if: !MSGPACK_SPEC_ORACLE do
  describe "the reported crash, in child processes" do
    it "reset from inside the ext proc raises; every read returns the whole object (the reported repro)" do
      result = child_json(InUseSpec::CHILD_SETUP + <<~'RUBY')
        u = MessagePack::Unpacker.new
        resets = []
        u.register_type(1, Foo) { resets << outcome { u.reset }; :ext }
        good = 0
        20.times do
          u.feed(FILLER); u.read; GC.start
          u.feed(EVIL)
          v = u.read
          v.inspect
          good += 1 if v == EXPECTED
          u.reset
        end
        Probe.report("good" => good, "resets" => resets.uniq, "count" => resets.size)
      RUBY
      expect(result).to eq("good" => 20, "resets" => [InUseSpec::REENTRANT], "count" => 20)
    end

    it "the same with GC.compact inside the proc, a nested container, and a Factory unpacker" do
      result = child_json(InUseSpec::CHILD_SETUP + <<~'RUBY')
        f = MessagePack::Factory.new
        u = nil
        seen = []
        f.register_type(1, Foo, packer: ->(_) { "x" }, unpacker: lambda do |payload|
          seen << outcome { u.reset } << outcome { u.feed(FILLER) } << outcome { u.skip }
          GC.respond_to?(:compact) ? GC.compact : GC.start
          [payload, :ext]
        end)
        u = f.unpacker
        msg = f.dump([{ "deep" => [[Foo.new, "s" * 100], Foo.new] }, Foo.new, 3])
        want = [{ "deep" => [[["x", :ext], "s" * 100], ["x", :ext]] }, ["x", :ext], 3]
        good = 0
        10.times do
          u.feed(FILLER); u.read
          u.feed(msg)
          good += 1 if u.read == want
          good += 1 if (begin; u.read; rescue EOFError; :eof; end) == :eof
        end
        Probe.report("good" => good, "seen" => seen.uniq)
      RUBY
      expect(result["good"]).to eq(20)
      expect(result["seen"]).to eq([InUseSpec::REENTRANT])
    end

    it "reset, feed, read, skip and each from another thread, while the reader is inside the ext proc" do
      result = child_json(InUseSpec::CHILD_SETUP + <<~'RUBY')
        inside = Queue.new
        go_on = Queue.new
        u = MessagePack::Unpacker.new
        u.register_type(1, Foo) { inside << true; go_on.pop; :ext }
        calls = {
          "reset" => -> { u.reset }, "feed" => -> { u.feed(FILLER) }, "read" => -> { u.read },
          "skip" => -> { u.skip }, "each" => -> { u.each { } }, "read_map_header" => -> { u.read_map_header },
        }
        outcomes = Hash.new { |h, k| h[k] = [] }
        good = 0
        20.times do |i|
          u.feed(FILLER); u.read; GC.start
          u.feed(EVIL)
          reader = Thread.new { u.read }
          inside.pop
          calls.each { |name, call| outcomes[name] << outcome(&call) }
          GC.start
          go_on << true
          good += 1 if reader.value == EXPECTED
          u.reset
        end
        Probe.report("good" => good, "outcomes" => outcomes.transform_values(&:uniq))
      RUBY
      expect(result["good"]).to eq(20)
      expect(result["outcomes"].values.uniq).to eq([[InUseSpec::OTHER_THREAD]])
    end

    it "threads sharing one Unpacker (feed, read, skip, reset; ext procs that yield the GVL) never crash or see a part of an object" do
      result = child_json(InUseSpec::CHILD_SETUP + <<~'RUBY')
        u = MessagePack::Unpacker.new
        u.register_type(1, Foo) { Thread.pass; (u.reset rescue nil); Thread.pass; :ext }
        wrong = 0
        errors = Hash.new(0)
        threads = Array.new(4) do |t|
          Thread.new do
            1500.times do |i|
              case (i + t) % 5
              when 0, 1 then u.feed(EVIL)
              when 2 then v = u.read; wrong += 1 unless v == EXPECTED
              when 3 then u.reset
              when 4 then u.skip
              end
            rescue MessagePack::UnpackError, EOFError => e
              errors[e.class.name] += 1
            end
          end
        end
        threads.each(&:join)
        GC.start
        u.reset
        u.feed(EVIL)
        Probe.report("wrong" => wrong, "errors" => errors.keys.sort, "after" => u.read == EXPECTED)
      RUBY
      expect(result["wrong"]).to eq(0)
      expect(result["after"]).to be(true)
      expect(result["errors"] - ["EOFError", "MessagePack::UnpackError"]).to eq([])
    end
  end

  describe "a recursive ext unpacker reads from the unpacker it runs in" do
    let(:point) { Struct.new(:x, :y) }
    let(:factory) do
      pt = point
      f = MessagePack::Factory.new
      f.register_type(1, pt, packer: ->(p, pk) { pk.write(p.x); pk.write(p.y) },
                             unpacker: ->(u) { pt.new(u.read, u.read) }, recursive: true)
      f
    end

    it "reads, skips and feeds while building, but cannot reset" do
      pt = point
      log = []
      f = MessagePack::Factory.new
      f.register_type(1, pt, packer: ->(p, pk) { pk.write(p.x); pk.write(:skipped); pk.write(p.y) },
                             unpacker: lambda { |u|
                               x = u.read
                               u.skip
                               log << (begin; u.reset; rescue MessagePack::UnpackError => e; e.message; end)
                               pt.new(x, u.read)
                             }, recursive: true)
      u = f.unpacker
      u.feed(f.dump([pt.new(1, [2, 3]), 4]))
      expect(u.read).to eq([pt.new(1, [2, 3]), 4])
      expect(log).to eq(["Unpacker is in use (re-entrant call from an extension callback?)"])
    end

    it "may feed bytes the rest of the stream needs (the outer read then completes with them)" do
      pt = point
      chunks = nil
      f = MessagePack::Factory.new
      f.register_type(1, pt, packer: ->(p, pk) { pk.write(p.x); pk.write(p.y) },
                             unpacker: ->(u) { x = u.read; y = u.read; u.feed(chunks.shift) until chunks.empty?; pt.new(x, y) },
                             recursive: true)
      data = f.dump([pt.new("a", "b"), "c"])
      cut = data.bytesize - 2 # the trailing "c" (a1 63) is not there yet
      chunks = [data.byteslice(cut..)]
      u = f.unpacker
      u.feed(data.byteslice(0, cut))
      expect(u.read).to eq([pt.new("a", "b"), "c"])
      expect { u.read }.to raise_error(EOFError)
    end

    it "nests: a recursive type inside a recursive type" do
      pt = point
      v = pt.new(pt.new(1, 2), [pt.new(3, pt.new(4, 5))])
      expect(factory.load(factory.dump(v))).to eq(v)
      u = factory.unpacker
      u.feed_each(factory.dump(v) * 3) { |o| expect(o).to eq(v) }
    end
  end

  describe "each: no read runs while its block does" do
    it "lets the block reset, feed and read; each goes on with what is then buffered" do
      u = MessagePack::Unpacker.new
      u.feed(MessagePack.pack(1) + MessagePack.pack(2) + MessagePack.pack(3))
      seen = []
      u.each do |o|
        seen << o
        case o
        when 1 then u.reset; u.feed(MessagePack.pack([10, 11]) + MessagePack.pack(12))
        when [10, 11] then seen << u.read
        end
      end
      expect(seen).to eq([1, [10, 11], 12])
      expect { u.read }.to raise_error(EOFError)
    end

    it "an each Enumerator paused between objects: reset, then next ends the iteration" do
      u = MessagePack::Unpacker.new
      u.feed(MessagePack.pack(1) + MessagePack.pack(2))
      e = u.each
      expect(e.next).to eq(1)
      u.reset
      expect { e.next }.to raise_error(StopIteration)
      u.feed(MessagePack.pack(9))
      expect(u.read).to eq(9)
    end

    it "an ext proc called by each still cannot reset" do
      u = MessagePack::Unpacker.new
      errors = []
      u.register_type(3) { |d| errors << (begin; u.reset; rescue MessagePack::UnpackError => e; e.class; end); d }
      u.feed([MessagePack.pack(1), "\xd4\x03z".b, MessagePack.pack(2)].join)
      expect(u.each.to_a).to eq([1, "z", 2])
      expect(errors).to eq([MessagePack::UnpackError])
    end
  end

  describe "Packer: during a walk" do
    # An object whose to_msgpack runs the hook, then writes :mid.
    let(:hooked) do
      Class.new do
        def initialize(&hook) = @hook = hook

        def to_msgpack(pk)
          @hook.call(pk)
          pk.write(:mid)
        end
      end
    end

    it "same thread: write appends in order, reset drops the output so far and the walk goes on after it" do
      pk = MessagePack::Packer.new
      pk.write([1, hooked.new { |p| p.write(:inserted) }, 2])
      expect(MessagePack::Unpacker.new.feed_each(pk.to_s).to_a).to eq([[1, "inserted", "mid"], 2])
      pk = MessagePack::Packer.new
      taken = nil
      pk.write([1, hooked.new { |p| taken = p.full_pack }, 2])
      expect(taken).to eq("\x93\x01".b)
      expect(pk.to_s).to eq(MessagePack.pack("mid") + MessagePack.pack(2))
    end

    it "another thread: every write raises RuntimeError and the output is unchanged" do
      pk = MessagePack::Packer.new
      inside = Queue.new
      go_on = Queue.new
      writer = Thread.new { pk.write([1, hooked.new { |_| inside << true; go_on.pop }, 2]) }
      inside.pop
      errors = [-> { pk.write(3) }, -> { pk.write_nil }, -> { pk.reset }, -> { pk.full_pack },
                -> { pk.write_to(StringIO.new) }, -> { pk.flush }].map do |call|
        call.call
        :ok
      rescue RuntimeError => e
        e.message
      end
      expect(pk.to_s).to eq("\x93\x01".b)
      go_on << true
      writer.join
      expect(errors.uniq).to eq(["Packer is in use: written by another thread"])
      expect(pk.to_s).to eq(MessagePack.pack([1, "mid", 2]))
      pk.write(4) # and usable again
      expect(MessagePack::Unpacker.new.feed_each(pk.to_s).to_a).to eq([[1, "mid", 2], 4])
    end
  end
end
