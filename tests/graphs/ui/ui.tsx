// Generative UI components of the "agent" graph: the default export maps names to components.
import "./ui.css";

function Weather(props: { city: string }) {
  return <div className="weather-card">Weather in {props.city}</div>;
}

export default { weather: Weather };
