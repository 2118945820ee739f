# frozen_string_literal: true

# docs/reentrancy.md, the Unpacker table (Unpacker and Unpacker#buffer): every method
# called from every context in which user code runs while a read is in progress.
#
# The cells run in one child process (spec/support/reentrancy_matrix.rb; a regression
# here is typically a crash). The table is read from the doc itself, so the page and the
# code cannot drift apart. Each example checks
#   - the outcome the table gives: works, or the exact exception of its code;
#   - what the unpacker does afterwards (the interrupted read's value, then every later
#     read up to EOF): a refused call leaves the stream exactly as it was; a call that
#     works has the effect listed in EFFECTS below, nothing more.
# Cells marked ⚠ in the doc (a known gap) are tagged :wip and assert the intended code.

module ReentrancyUnpackerSpec
  EOF = "!EOFError"
  UNEXPECTED = "raise MessagePack::UnexpectedTypeError: unexpected type"

  # The ext proc contexts read [ext, 6], 7, 8, [1, 2].
  EXT = [[":ext", 6], 7, 8, [1, 2], EOF].freeze
  # The recursive proc reads one object (the 5 its packer wrote): [[:rec, 5], 6], 7, 8, [1, 2].
  REC = [[[":rec", 5], 6], 7, 8, [1, 2], EOF].freeze
  REC_TOOK_5 = [[[":rec", 6], 7], 8, [1, 2], EOF].freeze # the call took the 5: the proc reads 6
  REC_FED = [[[":rec", 5], 6], 7, 8, [1, 2], 99, EOF].freeze
  # The IO callback runs after 92 05 were read: [5, 6], 7, 8, [1, 2].
  IO_BASE = [[5, 6], 7, 8, [1, 2], EOF].freeze
  IO_FED = [[5, 99], 6, 7, 8, [1, 2], EOF].freeze # written bytes come before the IO's next byte
  IO_TOOK_6 = [[5, 7], 8, [1, 2], EOF].freeze
  # each yields 5, 6, 7, 8, [1, 2] (the call runs at the first object).
  EACH = [[5, 6, 7, 8, [1, 2]], EOF].freeze
  EACH_TOOK_6 = [[5, 7, 8, [1, 2]], EOF].freeze
  EACH_FED = [[5, 6, 7, 8, [1, 2], 99], EOF].freeze
  EACH_EMPTIED = [[5], EOF].freeze
  # Everything buffered was consumed: the interrupted read ends in EOFError.
  DRAINED = [EOF, EOF].freeze

  BASE = {
    "ext proc" => EXT, "recursive ext proc" => REC, "IO callback" => IO_BASE, "each block" => EACH,
    "thread / ext proc" => EXT, "thread / recursive" => REC, "thread / IO" => IO_BASE,
  }.freeze

  # [outcome (nil: any "ok ..."), after] for the ✓ cells whose effect is not "nothing".
  EFFECTS = {
    "recursive ext proc" => {
      "read" => ["ok 5", REC_TOOK_5],
      "unpack" => ["ok 5", REC_TOOK_5],
      "skip" => ["ok nil", REC_TOOK_5],
      "skip_nil" => ["ok false", REC],
      "read_array_header" => [UNEXPECTED, REC],
      "read_map_header" => [UNEXPECTED, REC],
      "full_unpack" => ["raise MessagePack::MalformedFormatError: 6 extra bytes after the deserialized object", REC_TOOK_5],
      "each { }" => [nil, DRAINED],
      "each.next" => ["ok 5", REC_TOOK_5],
      "feed" => [nil, REC_FED],
      "feed_reference" => [nil, REC_FED],
      "feed_each" => [nil, DRAINED],
      "buffer.size" => ["ok 7", REC],
      "buffer.to_s" => [%(ok "05 06 07 08 92 01 02"), REC],
      "buffer.<<" => [nil, REC_FED],
      "buffer.write" => ["ok 1", REC_FED],
      "buffer.read" => [%(ok "05 06 07 08 92 01 02"), DRAINED],
      "buffer.read(1)" => [%(ok "05"), REC_TOOK_5],
      "buffer.read_all(1)" => [%(ok "05"), REC_TOOK_5],
      "buffer.skip(1)" => ["ok 1", REC_TOOK_5],
      "buffer.skip_all(1)" => [nil, REC_TOOK_5],
      "buffer.clear" => ["ok nil", DRAINED],
      "buffer.write_to" => ["ok 7", DRAINED],
    },
    "IO callback" => {
      "buffer.size" => ["ok 0", IO_BASE],
      "buffer.to_s" => [%(ok ""), IO_BASE],
      "buffer.<<" => [nil, IO_FED],
      "buffer.write" => ["ok 1", IO_FED],
      "buffer.read" => [%(ok "06 07 08 92 01 02"), DRAINED],
      "buffer.read(1)" => [%(ok "06"), IO_TOOK_6],
      "buffer.read_all(1)" => [%(ok "06"), IO_TOOK_6],
      "buffer.skip(1)" => ["ok 1", IO_TOOK_6],
      "buffer.skip_all(1)" => [nil, IO_TOOK_6],
      "buffer.clear" => ["ok nil", IO_BASE],
      "buffer.write_to" => ["ok 0", IO_BASE],
    },
    "each block" => {
      "read" => ["ok 6", EACH_TOOK_6],
      "unpack" => ["ok 6", EACH_TOOK_6],
      "skip" => ["ok nil", EACH_TOOK_6],
      "skip_nil" => ["ok false", EACH],
      "read_array_header" => [UNEXPECTED, EACH],
      "read_map_header" => [UNEXPECTED, EACH],
      "full_unpack" => ["raise MessagePack::MalformedFormatError: 5 extra bytes after the deserialized object", EACH_TOOK_6],
      "each { }" => [nil, EACH_EMPTIED],
      "each.next" => ["ok 6", EACH_TOOK_6],
      "feed" => [nil, EACH_FED],
      "feed_reference" => [nil, EACH_FED],
      "feed_each" => [nil, EACH_EMPTIED],
      "reset" => ["ok nil", EACH_EMPTIED],
      "buffer.size" => ["ok 6", EACH],
      "buffer.to_s" => [%(ok "06 07 08 92 01 02"), EACH],
      "buffer.<<" => [nil, EACH_FED],
      "buffer.write" => ["ok 1", EACH_FED],
      "buffer.read" => [%(ok "06 07 08 92 01 02"), EACH_EMPTIED],
      "buffer.read(1)" => [%(ok "06"), EACH_TOOK_6],
      "buffer.read_all(1)" => [%(ok "06"), EACH_TOOK_6],
      "buffer.skip(1)" => ["ok 1", EACH_TOOK_6],
      "buffer.skip_all(1)" => [nil, EACH_TOOK_6],
      "buffer.clear" => ["ok nil", EACH_EMPTIED],
      "buffer.write_to" => ["ok 6", EACH_EMPTIED],
    },
  }.freeze

  # Columns where msgpack-rs and the C gem (1.8.x) agree cell by cell, but for these rows.
  C_GEM_AGREES = {
    "each block" => ["compact!", "MessagePack.compact!", "buffer.compact!"],
    "recursive ext proc" => ["compact!", "MessagePack.compact!", "buffer.compact!", "skip", "reset"],
  }.freeze
end

RSpec.describe "Re-entrancy: Unpacker and Unpacker#buffer (docs/reentrancy.md)", if: !MSGPACK_SPEC_ORACLE do
  contexts, rows = ReentrancyDoc.table("unpacker")

  before(:context) do
    @results = ReentrancyDoc.child_results(self, "unpacker")
  end

  it "the table lists every method and context the matrix runs, and the matrix every one of the table" do
    expect(contexts).to eq(@results.keys)
    expect(rows.keys.sort).to eq(ReentrancyMatrix::UNPACKER_CALLS.keys.sort)
    ReentrancyUnpackerSpec::EFFECTS.each do |context, effects|
      effects.each_key do |method|
        expect(rows.fetch(method).fetch(context)).to be_works, "EFFECTS lists #{method} / #{context}, not a ✓ cell"
      end
    end
  end

  rows.each do |method, cells|
    describe method do
      cells.each do |context, cell|
        title = cell.wip ? "from #{context}: should raise #{cell.code} (⚠ works today)" : "from #{context}: #{cell.code}"
        it title, **(cell.wip ? { wip: true } : {}) do
          outcome, after = @results.fetch(context).fetch(method)
          base = ReentrancyUnpackerSpec::BASE.fetch(context)
          if cell.works?
            want_outcome, want_after = ReentrancyUnpackerSpec::EFFECTS.fetch(context, {}).fetch(method, [nil, base])
            if want_outcome
              expect(outcome).to eq(want_outcome)
            else
              expect(outcome).to start_with("ok")
            end
            expect(after).to eq(want_after)
          else
            expect(outcome).to eq(cell.error)
            expect(after).to eq(base), "a refused call changed the stream"
          end
        end
      end
    end
  end

  # The read position is committed when a decode step ends, so inside an ext proc the view
  # still counts the bytes the running read has consumed (92 d4 01 00). The C gem shows
  # only the unread ones.
  it "inside an ext proc, buffer.size and buffer.to_s count only the bytes not yet read (as the C gem)", :wip do
    expect(@results.dig("ext proc", "buffer.size", 0)).to eq("ok 6")
    expect(@results.dig("ext proc", "buffer.to_s", 0)).to eq(%(ok "06 07 08 92 01 02"))
  end

  describe "cross-check with the C gem (MSGPACK_RS_ORACLE_RUBY)" do
    it "gives the same cells in the each-block and recursive ext proc columns" do
      version = ReentrancyDoc.oracle_version
      skip "needs the C gem 1.8 (the Ruby 3.4 chroot of script/rubies); found #{version.inspect}" unless version && version >= Gem::Version.new("1.8")

      theirs = ReentrancyDoc.child_results(self, "unpacker", ruby: ReentrancyDoc.oracle_ruby)
      ReentrancyUnpackerSpec::C_GEM_AGREES.each do |context, except|
        (rows.keys - except).each do |method|
          expect(@results.dig(context, method)).to eq(theirs.dig(context, method)), "#{method} from #{context}"
        end
      end
    end
  end
end
