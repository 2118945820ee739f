# frozen_string_literal: true

# docs/reentrancy.md, the MappedUnpacker table: every method called from an ext proc of
# a Factory#open_file unpacker (in the middle of [ext, 6]), from the block of each, and
# from another thread while an ext proc runs. Same scheme as
# spec/reentrancy_unpacker_spec.rb (table read from the doc, cells run in a child).
# The file holds [ext, 6], 7, 8, [1, 2]; in the each context [ext, 6] was read first and
# the call runs at the first object each yields (7); "after" is then
# [objects each yielded, how each ended, later reads...].

module ReentrancyMappedSpec
  EOF = "!EOFError"
  EXT = [[":ext", 6], 7, 8, [1, 2], EOF].freeze
  EACH = [[7, 8, [1, 2]], "ok nil", EOF].freeze
  EACH_TOOK_8 = [[7, [1, 2]], "ok nil", EOF].freeze
  EACH_EMPTIED = [[7], "ok nil", EOF].freeze
  EACH_REWOUND = [[7, [":ext", 6], 7, 8, [1, 2]], "ok nil", EOF].freeze

  BASE = { "ext proc" => EXT, "each block" => EACH, "thread / ext proc" => EXT }.freeze

  EFFECTS = {
    "ext proc" => {
      "pos" => ["ok 0", EXT], # the position moves when the object is complete
      "size" => ["ok 10", EXT],
      "eof?" => ["ok false", EXT],
      "closed?" => ["ok false", EXT],
      # The object in progress was copied out of the mapping first: it finishes, then
      # the unpacker is closed.
      "close" => ["ok nil", [[":ext", 6], "!IOError"]],
    },
    "thread / ext proc" => {
      "close" => ["ok nil", [[":ext", 6], "!IOError"]],
    },
    "each block" => {
      "read" => ["ok 8", EACH_TOOK_8],
      "unpack" => ["ok 8", EACH_TOOK_8],
      "skip" => ["ok nil", EACH_TOOK_8],
      "full_unpack" => ["raise MessagePack::MalformedFormatError: 3 extra bytes after the deserialized object", EACH_TOOK_8],
      "each { }" => [nil, EACH_EMPTIED],
      "each.next" => ["ok 8", EACH_TOOK_8],
      "to_a" => [nil, EACH_EMPTIED],
      "seek(0)" => ["ok 0", EACH_REWOUND],
      "rewind" => ["ok 0", EACH_REWOUND],
      "pos" => ["ok 6", EACH],
      "size" => ["ok 10", EACH],
      "eof?" => ["ok false", EACH],
      # Nothing is held across the yield: close works, and each then stops with IOError.
      "close" => ["ok nil", [[7], "raise IOError: closed MappedUnpacker", "!IOError"]],
      "closed?" => ["ok false", EACH],
    },
  }.freeze
end

RSpec.describe "Re-entrancy: MappedUnpacker (docs/reentrancy.md)", if: !MSGPACK_SPEC_ORACLE do
  contexts, rows = ReentrancyDoc.table("mapped")

  before(:context) do
    @results = ReentrancyDoc.child_results(self, "mapped")
  end

  it "the table lists every method and context the matrix runs, and the matrix every one of the table" do
    expect(contexts).to eq(@results.keys)
    expect(rows.keys.sort).to eq(ReentrancyMatrix::MAPPED_CALLS.keys.sort)
  end

  rows.each do |method, cells|
    describe method do
      cells.each do |context, cell|
        it "from #{context}: #{cell.code}", **(cell.wip ? { wip: true } : {}) do
          outcome, after = @results.fetch(context).fetch(method)
          base = ReentrancyMappedSpec::BASE.fetch(context)
          if cell.works?
            want_outcome, want_after = ReentrancyMappedSpec::EFFECTS.fetch(context, {}).fetch(method, [nil, base])
            want_outcome ? expect(outcome).to(eq(want_outcome)) : expect(outcome).to(start_with("ok"))
            expect(after).to eq(want_after)
          else
            expect(outcome).to eq(cell.error)
            expect(after).to eq(base), "a refused call changed what the file decodes to"
          end
        end
      end
    end
  end
end
