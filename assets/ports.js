// The port map is read from sysfs on every load: reload it so a plug or unplug shows up.
"use strict";
setTimeout(() => window.location.reload(), 5000);
