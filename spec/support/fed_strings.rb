# frozen_string_literal: true

# Workloads for spec/compaction_fed_strings_spec.rb: Strings that an Unpacker, a Buffer
# or a Packer references (reads through a raw pointer) instead of copying, compacted
# while only that native object references them, then read back and checked exactly.
#
# Plain Ruby, no RSpec: the spec runs it in its own process and in a child process
# (require this file, spec/support/compaction.rb and msgpack; see FedStrings.run).
#
# Strings built in helper methods are returned only inside the native object: a String
# left in a local of a running method is pinned by the VM stack and never moves.
require "stringio"

module FedStrings
  SIZES = {
    "tiny" => 20, "100 B" => 100, "260 B" => 260, "300 B" => 300, "350 B" => 350, "400 B" => 400,
    "450 B" => 450, "600 B" => 600, "1 KiB" => 1024, "64 KiB" => 64 * 1024, "70 KiB" => 70 * 1024,
    "1 MiB" => 1 << 20,
  }.freeze

  # Every size, frozen or not, binary or UTF-8, built by appending to an empty String (a
  # heap String; capacity 512 B up to 512 B, which compaction on 3.2+ can re-embed) or
  # at its final size (embedded when it fits a slot).
  VARIANTS = SIZES.flat_map do |label, size|
    [true, false].product([Encoding::BINARY, Encoding::UTF_8], %i[appended exact]).map do |frozen, enc, how|
      { label: label, size: size, frozen: frozen, enc: enc, how: how }.freeze
    end
  end.freeze

  # For the Packer: every variant written with write_reference_threshold: 256, and those
  # above 512 KiB with the default threshold as well.
  PACKER_VARIANTS = (VARIANTS.map { |v| v.merge(threshold: 256).freeze } +
                     VARIANTS.select { |v| v[:size] > 512 * 1024 }.map { |v| v.merge(threshold: nil).freeze }).freeze

  ROUNDS = 20
  IO_CHUNKS = [450, 600, 1024, 70 * 1024, 300, 64 * 1024].freeze

  module_function

  def describe(v)
    "#{v[:label]} #{v[:frozen] ? "frozen" : "unfrozen"} #{v[:enc]} #{v[:how]}" +
      (v.key?(:threshold) ? " write_reference_threshold: #{v[:threshold].inspect}" : "")
  end

  # Top-level objects whose packed form is about `size` bytes: short Strings like the
  # issue's reproduction, then (above 300 B) long str and bin values, which an Unpacker
  # returns as shared substrings of a referenced String.
  def objects(size, seed)
    out = []
    used = 0
    k = 0
    while used < size - 12
      left = size - used
      o = if left > 700 && k % 3 == 1
            "é#{seed}-#{k}-" + format("%05d|", k) * [left / 18, 50_000].min
          elsif left > 700 && k % 3 == 2
            ((seed + k) % 251).chr.b * [left / 3, 300_000].min
          elsif left > 300 && k.zero?
            format("L%03d_%05d", k, seed) * 26 # 260 B: a substring even of a 300 B String
          else
            [format("s%03d_%05d", k, seed), k, { "é" => seed }]
          end
      out << o
      used += MessagePack.pack(o).bytesize
      k += 1
    end
    out
  end

  def data(objects) = objects.map { |o| MessagePack.pack(o) }.join

  def fed_string(bytes, v)
    s = v[:how] == :appended ? (+"") << bytes : "".b + bytes
    s.force_encoding(v[:enc])
    v[:frozen] ? s.freeze : s
  end

  def churn(seed)
    Array.new(2_000) { |k| "j" * ((k + seed) % 600) }
    nil
  end

  def churn_after(seed)
    Array.new(3_000) { |k| "Z" * ((k + seed) % 630) }
    nil
  end

  # [unpacker, expected objects]: only the unpacker references the fed String.
  def fed_unpacker(v, seed, opts = {}, method = :feed)
    objs = objects(v[:size], seed)
    u = MessagePack::Unpacker.new(opts)
    u.public_send(method, fed_string(data(objs), v))
    [u, objs]
  end

  # An IO whose readpartial returns new heap Strings of the given sizes in turn, frozen
  # or not: the Unpacker references or copies each by the feed rule.
  class ChunkIO
    def initialize(data, sizes, frozen)
      @data = data
      @sizes = sizes
      @frozen = frozen
      @pos = 0
      @calls = 0
    end

    def readpartial(n, buf = nil)
      raise EOFError if @pos >= @data.bytesize

      len = [@sizes[@calls % @sizes.size], n].min
      @calls += 1
      s = (+"") << @data.byteslice(@pos, len)
      @pos += len
      s.force_encoding(Encoding::BINARY)
      s.freeze if @frozen
      buf ? buf.replace(s) : s
    end
  end

  # [unpacker, [expected objects, first object]]: the first chunk is read (and
  # referenced) before the compaction.
  def io_unpacker(v, seed)
    objs = objects(v[:size], seed)
    io = if v[:how] == :appended
           ChunkIO.new(data(objs), IO_CHUNKS.rotate(seed % IO_CHUNKS.size), v[:frozen])
         else
           StringIO.new(fed_string(data(objs), v)) # readpartial: new unfrozen Strings
         end
    u = MessagePack::Unpacker.new(io, io_buffer_size: 128 * 1024)
    [u, [objs, u.read]]
  end

  # [buffer, expected bytes]: Strings of the variant appended to a Buffer that references
  # those of more than 256 B.
  def written_buffer(v, seed)
    bytes = data(objects(v[:size], seed))
    b = MessagePack::Buffer.new(write_reference_threshold: 256)
    b << fed_string(bytes, v)
    b << "-mid-"
    b << fed_string(bytes.reverse, v)
    [b, bytes + "-mid-" + bytes.reverse]
  end

  # [packer, expected bytes]: Strings written by reference, then (unfrozen ones) changed
  # by the caller.
  def written_packer(v, seed)
    bytes = data(objects(v[:size], seed))
    pk = v[:threshold] ? MessagePack::Packer.new(write_reference_threshold: v[:threshold]) : MessagePack::Packer.new
    s = fed_string(bytes, v)
    pk.write(s)
    pk.write_array_header(2).write(seed)
    pk.write(fed_string(bytes.reverse, v))
    s.replace("changed") unless s.frozen? # the packer must not see this
    [pk, MessagePack.pack(bytes.dup.force_encoding(v[:enc])) + MessagePack.pack([seed, bytes.reverse.force_encoding(v[:enc])])]
  end

  def each_object(u, midway, skip = 0)
    got = []
    u.each do |o|
      got << o
      midway.call if got.size == 1 + skip
    end
    got
  end

  # name => [variants, build(variant, round) => [native, expected],
  #          check(native, expected, midway) => true, or a lambda to call after one more
  #          compaction (values read now and used later)]
  # `midway` compacts (for one subject per round and path) or does nothing.
  PATHS = {
    "Unpacker#feed, #read" => [
      VARIANTS, ->(v, r) { fed_unpacker(v, r * 7 + 1) },
      lambda do |u, objs, midway|
        got = objs.each_index.map do |k|
          midway.call if k == 1
          u.read
        end
        got == objs && (u.read rescue $!.class) == EOFError
      end,
    ],
    "Unpacker#feed, #feed_each" => [
      VARIANTS, ->(v, r) { fed_unpacker(v, r * 7 + 2) },
      lambda do |u, objs, midway|
        got = []
        u.feed_each(MessagePack.pack("tail")) do |o|
          got << o
          midway.call if got.size == 1
        end
        got == objs + ["tail"]
      end,
    ],
    "Unpacker#feed, #each" => [
      VARIANTS, ->(v, r) { fed_unpacker(v, r * 7 + 3, { symbolize_keys: false }) },
      ->(u, objs, midway) { each_object(u, midway) == objs },
    ],
    "Unpacker#each over an IO" => [
      VARIANTS, ->(v, r) { io_unpacker(v, r * 7 + 4) },
      ->(u, (objs, first), midway) { [first] + each_object(u, midway) == objs },
    ],
    "Unpacker#feed_reference, read_reference_threshold substrings" => [
      VARIANTS,
      lambda do |v, r|
        fed_unpacker(v, r * 7 + 5, { read_reference_threshold: [256, 300, 1024, 64 * 1024][r % 4] }, :feed_reference)
      end,
      lambda do |u, objs, midway|
        values = []
        while values.size < objs.size
          values << u.read
          midway.call if values.size == 1
        end
        first = values == objs
        -> { first && values == objs }
      end,
    ],
    "Buffer#<<, #read, #read_all, #to_s" => [
      VARIANTS, ->(v, r) { written_buffer(v, r * 7 + 6) },
      lambda do |b, bytes, midway|
        whole = b.to_s == bytes
        midway.call
        cut = bytes.bytesize / 3
        a = b.read_all(cut)
        c = b.read(cut)
        whole && a + c + b.read == bytes && b.empty?
      end,
    ],
    "Packer#write (by reference), #to_s" => [
      PACKER_VARIANTS, ->(v, r) { written_packer(v, r * 7) },
      lambda do |pk, bytes, midway|
        midway.call
        pk.to_s == bytes && pk.to_a.join == bytes && pk.full_pack == bytes && pk.empty?
      end,
    ],
  }.freeze

  def outcome
    yield
  rescue StandardError => e
    "#{e.class}: #{e.message[0, 100]}"
  end

  # Runs `rounds` rounds of every path: builds one subject per variant (those `variants`
  # selects), compacts (`compact`) with garbage around, checks each subject (one per path
  # and round compacts in the middle of its read, with `midway`), compacts again for the
  # deferred checks. Returns [{ path => ["round R: variant (error)", ...] }, objects moved].
  def run(compact, midway = compact, rounds: ROUNDS, variants: ->(_) { true }, paths: PATHS.keys)
    lists = PATHS.slice(*paths).transform_values { |(all, _, _)| all.select(&variants) }
    bad = lists.transform_values { [] }
    moved = GC.stat(:total_moved_objects)
    rounds.times do |round|
      @subjects = lists.to_h { |name, list| [name, list.map { |v| PATHS[name][1].call(v, round) }] }
      churn(round)
      compact.call
      churn_after(round)
      later = []
      @subjects.each do |name, subjects|
        check = PATHS[name][2]
        subjects.each_with_index do |(native, expected), i|
          mid = i == round * 5 % subjects.size ? midway : -> {}
          ok = outcome { check.call(native, expected, mid) }
          ok.is_a?(Proc) ? later << [name, i, ok] : note(bad[name], round, lists[name][i], ok)
        end
      end
      @subjects = nil
      next if later.empty?

      churn(round)
      compact.call
      churn_after(round)
      later.each { |name, i, check| note(bad[name], round, lists[name][i], outcome(&check)) }
    end
    [bad, GC.stat(:total_moved_objects) - moved]
  end

  def note(list, round, variant, ok)
    list << "round #{round}: #{describe(variant)}#{" (#{ok})" if ok.is_a?(String)}" unless ok == true
  end

  # Ruby 3.1's check after every compaction (check_stack_for_moved) also reads the VM
  # stack slot *at* the stack pointer (rb_vm_each_stack_value loops `p <= sp`; fixed in
  # ruby/ruby#7081): a VALUE left there by an earlier call. Once
  # GC.verify_compaction_references(double_heap: true) has freed the extra heap pages,
  # such a leftover can point into unmapped memory and GC.compact segfaults in Ruby
  # (seen here within a few rounds, also with no msgpack method on the stack).
  # Calling a few nested methods first leaves only live objects and tagged words in the
  # slots above the stack pointer.
  def scrub_vm_stack(n = 16) = n.zero? ? nil : scrub_vm_stack(n - 1)

  MODES = {
    "GC.compact" => -> { scrub_vm_stack; GC.compact },
    "GC.auto_compact = true and GC.start" => -> { scrub_vm_stack; GC.start(full_mark: true, immediate_sweep: true) },
    "verify" => -> { scrub_vm_stack; CompactionHelpers.verify_compaction_references },
  }.freeze

  # For the child process: runs every path with `mode`'s compaction (verify: midway
  # compactions use GC.compact, which is far cheaper) and prints a Marshal dump (base64)
  # of run's result.
  def child_main(mode)
    GC.auto_compact = true
    midway = mode == "verify" ? MODES["GC.compact"] : MODES[mode]
    puts [Marshal.dump(run(MODES[mode], midway))].pack("m0")
  end
end
