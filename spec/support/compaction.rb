# frozen_string_literal: true

# GC.verify_compaction_references with the keywords of the running Ruby. Every caller
# in the suite goes through CompactionHelpers.verify_compaction_references.
#
# Ruby 3.1 names the heap-growth keyword `double_heap:`; 3.2 renamed it `expand_heap:`.
# Later Rubies still accept `double_heap:` (with a deprecation warning, no ArgumentError),
# but 3.3 then grows the heap about 1.8x on every call and never gives it back, so the
# keyword is chosen by RUBY_VERSION, never by trying one and rescuing ArgumentError.
# See docs/compatibility.md §20.
module CompactionHelpers
  VERIFY_KEYWORDS =
    if Gem::Version.new(RUBY_VERSION) >= Gem::Version.new("3.2")
      { toward: :empty, expand_heap: true }.freeze
    else
      { toward: :empty, double_heap: true }.freeze
    end

  # "GC.verify_compaction_references(toward: :empty, expand_heap: true)" (for example names)
  VERIFY_CALL = "GC.verify_compaction_references(#{VERIFY_KEYWORDS.map { |k, v| "#{k}: #{v.inspect}" }.join(", ")})"

  module_function

  # Moves every movable object, then checks that no reference points at a moved slot.
  # Raises NotImplementedError where the platform cannot compact.
  def verify_compaction_references
    GC.verify_compaction_references(**VERIFY_KEYWORDS)
  end
end
