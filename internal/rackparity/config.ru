# frozen_string_literal: true

# The Puma stand-in for Canvas: answers every request with RackParity's
# reading as JSON and keeps the readings; GET /__rackparity/take returns
# and clears them (the tests call it directly, never through the gate).

require_relative "reading"

readings = []
lock = Mutex.new

run(lambda do |env|
  if env["PATH_INFO"] == "/__rackparity/take"
    taken = lock.synchronize { readings.slice!(0, readings.size) }
    next [200, { "Content-Type" => "application/json" }, [JSON.generate(taken)]]
  end
  reading = RackParity.read(env)
  lock.synchronize { readings << reading }
  [200, { "Content-Type" => "application/json" }, [JSON.generate(reading)]]
end)
