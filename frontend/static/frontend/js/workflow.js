// The workflow page: zoom for the graph picture (the start form is a plain form).
import { enableAllZooms } from "./dag.js";

enableAllZooms();
