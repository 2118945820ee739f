# frozen_string_literal: true

# GC callbacks of msgpack objects while their Ractor runs (issue "GC callbacks race with
# other Ractors").
#
# The mark (dmark), compact (dcompact) and size (dsize) callbacks do not only run inside a
# GC, where every Ractor is stopped: the main Ractor's ObjectSpace.memsize_of_all calls
# dsize of every object, other Ractors' included, and ObjectSpace.reachable_objects_from
# calls dmark, while the owning Ractors keep running. The callbacks used to take RefCell
# borrows (not atomic) of the objects' Rust state: on Ruby 3.4 that gave segfaults in
# dsize, spurious "Unpacker is in use" errors in the owner, and feed_each yielding
# objects twice (12,571 objects for data holding 50). Now they read Rust state only
# inside a GC or on the owner's Ractor, and sizes come from atomics
# (docs/gc-and-ractors.md).
#
# The workload runs in a child process, so that a crash fails one example instead of the
# suite. 4 worker Ractors decode data of known content (50 objects per message, fed in
# pieces of varied sizes) with feed_each, feed + each, read and an Unpacker over an IO,
# pack it again with Packers (one writing a 600 KiB String by reference) and copy it
# through a Buffer, checking every count and value. Meanwhile the main Ractor loops
# ObjectSpace.memsize_of_all, ObjectSpace.reachable_objects_from and
# ObjectSpace.memsize_of on each of the workers' msgpack objects, GC.compact and
# GC.verify_compaction_references. The workers pause every 0.4 s; main then runs
# GC.verify_compaction_references and reachable_objects_from too. Before the fix, on Ruby
# 3.4 this gave "Unpacker is in use" / "buffer is in use" errors, wrong Packer output,
# more decoded objects than sent, and hangs, in 5 runs of 6.
#
# What the workload avoids, because it crashes or hangs in Ruby itself (also with no
# msgpack code at all):
# - Finding the workers' objects: ObjectSpace.each_object yields only shareable objects
#   while several Ractors run, and while they allocate it crashes on Ruby 3.1
#   (rb_obj_is_kind_of on a half-made object), so it is called only while the workers
#   wait. The objects are found then by walking reachable_objects_from from the worker
#   Ractors to their Threads, whose VM stacks and environments (T_IMEMO) hold the
#   workers' locals; marking a running Thread, or an Array another Ractor is changing,
#   crashes Ruby.
# - Allocating T_DATA objects (Unpacker, Packer, StringIO, Proc, Enumerator, an
#   exception's backtrace) in the workers' loop: memsize_of_all can see one before its
#   type pointer is written and crash in Ruby's rb_obj_memsize_of (Ruby 3.4). The workers
#   make all of them first and raise nothing in the loop.
# - On Ruby 3.1, GC.verify_compaction_references and ObjectSpace.reachable_objects_from
#   while other Ractors run: the first segfaults or hangs in about 1 run of 5 with plain
#   Ruby workers, the second hits "[BUG] rb_objspace_reachable_objects_from() is not
#   supported while during_gc == true" within seconds. On 3.1 both run only in the pauses.
# - GC.verify_compaction_references while other Ractors run, on every Ruby: after its GC
#   it walks every object of the heap with reachable_objects_from outside the GC's
#   barrier, so it reads objects other Ractors are changing. On Ruby 3.4 that segfaults
#   (in rb_gc_obj_slot_size under rb_gc_mark_children) in about 1 run of 3 with plain
#   Ruby workers slicing strings and building Hashes, no msgpack loaded, and about 1 in
#   5 with this workload, with the same C backtrace. It runs only in the pauses;
#   GC.compact (a GC, all Ractors stopped) runs concurrently.

# The C gem is not Ractor-safe (docs/compatibility.md §16).
return if defined?(MSGPACK_SPEC_ORACLE) && MSGPACK_SPEC_ORACLE

RSpec.describe "GC callbacks while other Ractors use msgpack objects", :ractor do
  GC_CALLBACKS_SCRIPT = <<~'RUBY'
    require "msgpack"
    require "objspace"
    require "stringio"
    PHASES = Integer(ARGV.fetch(0, "8"))
    PHASE_SECONDS = 0.4
    PER_MESSAGE = 50
    PIECES = [1, 7, 64, 300, 1024, 5, 4096, 2, 700].freeze
    KINDS = [MessagePack::Unpacker, MessagePack::Packer, MessagePack::Buffer].freeze
    # Ruby itself cannot do these while other Ractors run (see the top of the spec).
    CONCURRENT_REACH = Gem::Version.new(RUBY_VERSION) >= Gem::Version.new("3.2")

    def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

    # Worker k, message n: 50 objects of known content (nested containers, some long
    # Strings), and the same objects packed one after the other.
    def message(k, n)
      objs = Array.new(PER_MESSAGE) do |i|
        [k, n, i, "s#{i}" * (i % 9), { "k" => i, "f" => i * 0.5, "b" => ("\x01".b * (i % 4)) },
         i % 10 == 0 ? "L#{k}-#{n}-" * 40 : nil]
      end
      [objs, objs.map { |o| MessagePack.pack(o) }.join]
    end

    def pieces(data, n)
      out = []
      pos = 0
      j = n
      while pos < data.bytesize
        len = PIECES[j % PIECES.size]
        out << data.byteslice(pos, len)
        pos += len
        j += 1
      end
      out
    end

    workers = 4.times.map do |w|
      Ractor.new(w) do |k|
        errors = Hash.new(0)
        note = ->(what) { errors[what] += 1 }
        decoded = 0
        expected = 0
        messages = 0
        n = 0
        # Made before the loop and kept in locals: the main Ractor finds them there.
        each_unpacker = MessagePack::Unpacker.new
        feed_unpacker = MessagePack::Unpacker.new
        read_unpacker = MessagePack::Unpacker.new(symbolize_keys: false)
        io = StringIO.new(+"".b)
        io_unpacker = MessagePack::Unpacker.new(io, io_buffer_size: 1024)
        packer = MessagePack::Packer.new
        ref_packer = MessagePack::Packer.new
        buffer = MessagePack::Buffer.new
        big = "W" * 600_000
        big_packed = MessagePack.pack(big)
        Ractor.main.send(k)
        until Ractor.receive == :stop # wait (the main Ractor looks around), then a phase
          t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
          begin
            until Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0 > PHASE_SECONDS
              begin
                objs, data = message(k, n)
                got = []
                case n % 4
                when 0 # feed_each over pieces of varied sizes
                  pieces(data, n).each { |pc| each_unpacker.feed_each(pc) { |o| got << o } }
                when 1 # feed + each, the message in three pieces
                  third = data.bytesize / 3
                  [data.byteslice(0, third), data.byteslice(third, third), data.byteslice(2 * third..)].each do |pc|
                    feed_unpacker.feed(pc)
                    feed_unpacker.each { |o| got << o }
                  end
                when 2 # feed pieces of varied sizes, then read object by object
                  pieces(data, n + 3).each { |pc| read_unpacker.feed(pc) }
                  objs.size.times { got << read_unpacker.read }
                  note.("data left after read") unless read_unpacker.buffer.empty?
                else # an Unpacker over an IO
                  io.string = data
                  io_unpacker.each { |o| got << o }
                end
                decoded += got.size
                expected += objs.size
                note.("wrong objects (#{got.size} for #{objs.size})") unless got == objs

                packer.write_array_header(objs.size)
                objs.each { |o| packer.write(o) }
                note.("wrong packed bytes") unless packer.full_pack == "\xDC\x00\x32".b + data
                ref_packer.write(big) if n % 25 == 0 # written by reference (> 512 KiB)
                objs.each { |o| ref_packer.write(o) }
                note.("wrong Packer#to_s") unless ref_packer.to_s == (n % 25 == 0 ? big_packed + data : data)
                ref_packer.reset

                buffer << data.byteslice(0, 100) << data.byteslice(100..)
                note.("wrong Buffer#read_all") unless buffer.read_all(100) == data.byteslice(0, 100)
                note.("wrong Buffer#read") unless buffer.read == data.byteslice(100..)
                messages += 1
              rescue Exception => e # rubocop:disable Lint/RescueException
                note.("#{e.class}: #{e.message[0, 120]}")
                [each_unpacker, feed_unpacker, read_unpacker, io_unpacker].each(&:reset) # start over
              end
              n += 1
            end
          rescue Exception => e # rubocop:disable Lint/RescueException
            note.("outside a message: #{e.class}: #{e.message[0, 120]}")
          ensure
            Ractor.main.send(k) # paused (also after an error: the main Ractor waits for it)
          end
        end
        [k, messages, decoded, expected, errors]
      end
    end

    stats = Hash.new(0)
    pause = lambda do
      4.times { Ractor.receive }
      sleep 0.05 # every worker now waits in Ractor.receive
    end

    # While the workers wait: each_object (yields only shareable objects here), then the
    # workers' objects through their Threads' VM stacks.
    pause.call
    KINDS.each do |k|
      ObjectSpace.each_object(k) do |o|
        stats[:each_object] += 1
        ObjectSpace.reachable_objects_from(o)
      end
    rescue StandardError => e
      stats[:"each_object #{e.class}"] += 1
    end
    reach = ->(o) { ObjectSpace.reachable_objects_from(o) || [] }
    threads = workers.flat_map(&reach).grep(Thread)
    stack = threads.flat_map(&reach)
    envs = stack.grep(ObjectSpace::InternalObjectWrapper).select { |w| w.type == :T_IMEMO } # captured locals
    found = (stack + envs.flat_map(&reach)).select { |o| KINDS.any? { |k| k === o } }.uniq(&:__id__)
    stats[:found] = found.size

    PHASES.times do |phase|
      workers.each { |r| r.send(:go) }
      t0 = now
      loop_no = 0
      while now - t0 < PHASE_SECONDS
        loop_no += 1
        t1 = now
        while now - t1 < 0.03 # the workers' objects, as often as possible
          found.each do |o|
            ObjectSpace.reachable_objects_from(o) if CONCURRENT_REACH
            stats[:sizes] += 1 if ObjectSpace.memsize_of(o) > 0
          end
        end
        stats[:memsize_of_all] += 1 if ObjectSpace.memsize_of_all > 0
        if loop_no.odd?
          GC.compact
          stats[:compact] += 1
        end
      end
      pause.call
      if phase.even?
        CompactionHelpers.verify_compaction_references
        stats[:verify] += 1
      end
      found.each { |o| ObjectSpace.reachable_objects_from(o) }
    end
    workers.each { |r| r.send(:stop) }
    results = workers.map { |r| RactorHelpers.ractor_value(r) }.sort_by(&:first)
    puts [Marshal.dump([results, stats])].pack("m0")
  RUBY

  # run_isolated_ruby with a time limit: a hang (a worker stuck, or the main Ractor
  # waiting for one that died) fails the example instead of the suite.
  def run_isolated_ruby_within(seconds, code)
    require "open3"
    env = { "RUBYLIB" => nil, "RUBYOPT" => nil }
    Open3.popen3(env, RbConfig.ruby, *SPEC_CHILD_LOAD_ARGS, "-e", code, chdir: REPO_ROOT) do |stdin, out, err, wait|
      stdin.close
      readers = [out, err].map { |io| Thread.new { io.read } }
      hung = wait.join(seconds).nil?
      Process.kill(:KILL, wait.pid) if hung
      stdout, stderr = readers.map(&:value)
      [stdout, hung ? "#{stderr}\n(killed: no exit after #{seconds} s)" : stderr, wait.value]
    end
  end

  def run_workload(phases)
    prelude = "Warning[:experimental] = false\n#{RactorHelpers::REQUIRE_LINE}" \
              "require #{File.join(__dir__, "support", "compaction.rb").dump}\nARGV.replace([#{phases.to_s.dump}])\n"
    stdout, stderr, status = run_isolated_ruby_within(90, prelude + GC_CALLBACKS_SCRIPT)
    expect(status.success?).to be(true), "child failed (#{status.inspect}):\n#{stderr[0, 3000]}"
    expect(stderr).to eq("")
    Marshal.load(stdout.lines.last.strip.unpack1("m0")) # rubocop:disable Security/MarshalLoad
  end

  it "4 Ractors decode and pack with exact counts and values while main runs memsize_of_all, " \
     "reachable_objects_from, verify_compaction_references and GC.compact" do
    results, stats = run_workload(12)
    expect(results.map(&:first)).to eq([0, 1, 2, 3])
    results.each do |k, messages, decoded, expected, errors|
      expect(errors).to eq({}), "worker #{k}: #{errors.inspect}"
      expect(messages).to be > 20
      expect(decoded).to eq(expected)
      expect(decoded).to eq(messages * 50)
    end
    expect(stats[:found]).to be >= 4 * 7 # the workers' Unpackers, Packers and Buffers
    expect(stats[:memsize_of_all]).to be > 12
    expect(stats[:sizes]).to be > 12 * stats[:found]
    expect(stats[:compact]).to be > 12
    expect(stats[:verify]).to eq(6)
  end
end
