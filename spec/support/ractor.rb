# frozen_string_literal: true

# A Ractor's result on every supported Ruby: Ractor#value where it exists (Ruby 3.5+,
# which removed Ractor#take and Ractor.yield), Ractor#take before that (3.1-3.4, where a
# Ractor that never calls Ractor.yield hands over its block's value through take).
# Specs get several values out of a Ractor by returning an Array from its block.
#
# Plain Ruby, no RSpec: child processes started by the specs load it too
# (RactorHelpers::REQUIRE_LINE prepended to their script) and call
# RactorHelpers.ractor_value(r). See docs/compatibility.md §20.
module RactorHelpers
  REQUIRE_LINE = "require #{File.expand_path(__FILE__).dump}\n"

  module_function

  # Waits for `ractor` to finish and returns its block's value. If the Ractor raised,
  # this raises Ractor::RemoteError with that exception as its cause.
  def ractor_value(ractor)
    ractor.respond_to?(:value) ? ractor.value : ractor.take
  end
end
